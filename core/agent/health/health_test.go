package health

import (
	"strings"
	"testing"
	"time"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

func TestFromProtoDefaultsAndErrors(t *testing.T) {
	c, err := FromProto(&corralpb.HealthCheck{Type: corralpb.HealthCheck_HTTP, Port: 80}, "/sb", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Delay != 15*time.Second || c.Interval != 10*time.Second || c.Timeout != 20*time.Second ||
		c.ConsecutiveFailures != 3 || c.Grace != 10*time.Second || c.Path != "/" || c.Scheme != "http" {
		t.Fatalf("Mesos defaults not applied: %+v", c)
	}
	for _, tc := range []struct {
		hc   *corralpb.HealthCheck
		want string
	}{
		{&corralpb.HealthCheck{}, "want COMMAND, HTTP or TCP"},
		{&corralpb.HealthCheck{Type: corralpb.HealthCheck_COMMAND}, "needs a command"},
		{&corralpb.HealthCheck{Type: corralpb.HealthCheck_HTTP}, "HTTP port 0"},
		{&corralpb.HealthCheck{Type: corralpb.HealthCheck_HTTP, Port: 80, Scheme: "ftp"}, "scheme"},
		{&corralpb.HealthCheck{Type: corralpb.HealthCheck_TCP, Port: 70000}, "TCP port 70000"},
	} {
		if _, err := FromProto(tc.hc, "/sb", nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromProto(%v) = %v, want %q", tc.hc, err, tc.want)
		}
	}
}

func TestCommandProbeTimeout(t *testing.T) {
	c := Check{Kind: Command, Command: "sleep 30", Timeout: 100 * time.Millisecond, Dir: t.TempDir()}
	start := time.Now()
	err := c.Probe(t.Context())
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Probe = %v, want a timeout", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("a timed-out check took %v: its process was not killed", time.Since(start))
	}
}
