package conf

import (
	"strings"
	"testing"
	"time"
)

func TestConsulBlock(t *testing.T) {
	cfg, err := Parse("ha.hcl", []byte(`
consul {
  address   = "10.0.0.5:8501"
  scheme    = "https"
  prefix    = "prod/corral"
  token     = "s3cret"
  ca_file   = "/etc/consul/ca.pem"
  check_ttl = "2s"
}
agent { master = "consul://127.0.0.1:8500/prod/corral" }
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Consul
	if c == nil || c.Address != "10.0.0.5:8501" || c.Scheme != "https" || c.Prefix != "prod/corral" || c.Token != "s3cret" ||
		c.CAFile != "/etc/consul/ca.pem" || c.CheckTTL != 2*time.Second || c.LockDelay != 0 {
		t.Fatalf("consul block: %+v", c)
	}
	if cfg.Agent.Master != "consul://127.0.0.1:8500/prod/corral" {
		t.Fatalf("agent master %q", cfg.Agent.Master)
	}
	if d, err := Parse("x.hcl", []byte(``)); err != nil || d.Consul != nil {
		t.Fatalf("no consul block: %+v %v; want standalone (nil)", d.Consul, err)
	}
	if d, err := Parse("x.hcl", []byte(`consul {}`)); err != nil || d.Consul == nil || d.Consul.Address != "127.0.0.1:8500" || d.Consul.Prefix != "corral" {
		t.Fatalf("empty consul block: %+v %v; want the defaults", d.Consul, err)
	}
}

func TestConsulBlockErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`consul { address = "nohost" }`, "consul.address"},
		{`consul { scheme = "ftp" }`, "want http or https"},
		{`consul { prefix = "/" }`, "prefix must not be empty"},
		{`consul { check_ttl = "0s" }`, "consul.check_ttl"},
		{`consul { bogus = 1 }`, "bogus"},
		{`agent { master = "10.0.0.1:5050,nohost" }`, "agent.master"},
		{`agent { master = "consul://nohost/corral" }`, "consul address"},
	} {
		_, err := Parse("ha.hcl", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v; want one naming %q", tc.src, err, tc.want)
		}
	}
}
