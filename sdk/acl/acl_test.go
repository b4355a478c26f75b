package acl

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func names(v ...string) Entity {
	e, err := NewEntity(v)
	if err != nil {
		panic(err)
	}
	return e
}

func TestDecide(t *testing.T) {
	acls := &ACLs{Rules: map[Action][]Rule{
		RegisterFrameworks: {
			{Principals: names("ops"), Objects: names(None)}, // ops may register in no role
			{Principals: names("analytics"), Objects: names("analytics", "batch/*")},
			{Principals: names(Any), Objects: names("*")},
		},
		RunTasks: {
			{Principals: names("analytics"), Objects: names("nobody")},
		},
		KillTasks: {
			{Principals: names("ops"), Objects: names(Any)},
			{Principals: names(Any), Objects: names("self")},
		},
	}}
	for _, tc := range []struct {
		name      string
		principal string
		action    Action
		object    string
		allowed   bool
		rule      int
	}{
		{"listed role", "analytics", RegisterFrameworks, "analytics", true, 1},
		{"nested role under a /* value", "analytics", RegisterFrameworks, "batch/nightly", true, 1},
		{"the /* parent itself is not covered", "analytics", RegisterFrameworks, "batch", false, -1},
		{"unlisted role falls to the ANY rule", "analytics", RegisterFrameworks, "*", true, 2},
		{"role no rule allows", "analytics", RegisterFrameworks, "prod", false, -1},
		{"NONE rule denies before the ANY rule", "ops", RegisterFrameworks, "*", false, 0},
		{"ANY principal", "someone", RegisterFrameworks, "*", true, 2},
		{"anonymous is not ANY", "", RegisterFrameworks, "*", false, -1},
		{"allowed user", "analytics", RunTasks, "nobody", true, 0},
		{"root not allowed", "analytics", RunTasks, "root", false, -1},
		{"action without rules", "analytics", DrainAgents, "host1", false, -1},
		{"ANY object", "ops", KillTasks, "analytics", true, 0},
		{"own framework principal only", "analytics", KillTasks, "ops", false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := acls.Decide(tc.principal, tc.action, tc.object)
			if d.Allowed != tc.allowed || d.Rule != tc.rule {
				t.Fatalf("Decide(%q, %s, %q) = %+v, want allowed=%v rule=%d", tc.principal, tc.action, tc.object, d, tc.allowed, tc.rule)
			}
			err := acls.Authorize(tc.principal, tc.action, tc.object)
			if (err == nil) != tc.allowed {
				t.Fatalf("Authorize = %v, want allowed=%v", err, tc.allowed)
			}
		})
	}
}

func TestPermissiveAndNil(t *testing.T) {
	var off *ACLs
	if err := off.Authorize("", DrainAgents, "h"); err != nil || off.Enabled() {
		t.Fatalf("nil ACLs: Authorize = %v, Enabled = %v; want allowed and off", err, off.Enabled())
	}
	p := &ACLs{Permissive: true, Rules: map[Action][]Rule{DrainAgents: {{Principals: names("ro"), Objects: names(None)}}}}
	if err := p.Authorize("ops", DrainAgents, "h"); err != nil {
		t.Fatalf("permissive, no rule: %v", err)
	}
	if err := p.Authorize("ro", DrainAgents, "h"); err == nil {
		t.Fatal("permissive ACLs let a NONE rule's principal through")
	}
}

func TestDeniedMessage(t *testing.T) {
	a := &ACLs{}
	err := a.Authorize("analytics", RegisterFrameworks, "prod")
	var d *Denied
	if !errors.As(err, &d) {
		t.Fatalf("got %T %v, want *Denied", err, err)
	}
	for _, want := range []string{`principal "analytics"`, "register frameworks", `role "prod"`, "acl.register_frameworks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if msg := a.Authorize("", DrainAgents, "h1").Error(); !strings.Contains(msg, "unauthenticated") {
		t.Errorf("anonymous refusal %q does not say the caller is unauthenticated", msg)
	}
}

func TestNewEntity(t *testing.T) {
	for _, bad := range [][]string{nil, {}, {"ANY", "x"}, {"x", "NONE"}, {""}, {" "}} {
		if _, err := NewEntity(bad); err == nil {
			t.Errorf("NewEntity(%q) accepted", bad)
		}
	}
}

func TestCredentials(t *testing.T) {
	c, err := ParseCredentials([]byte(`{"credentials": [{"principal": "a", "secret": "s1"}, {"principal": "b", "secret": "s2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify("a", "s1"); err != nil {
		t.Fatalf("right secret refused: %v", err)
	}
	for _, tc := range [][2]string{{"a", "s2"}, {"c", "s1"}, {"a", ""}} {
		if err := c.Verify(tc[0], tc[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(%q, %q) = %v, want ErrBadCredentials", tc[0], tc[1], err)
		}
	}
	for _, bad := range []string{
		`{"credentials": [{"principal": "", "secret": "x"}]}`,
		`{"credentials": [{"principal": "a", "secret": ""}]}`,
		`{"credentials": [{"principal": "a", "secret": "x"}, {"principal": "a", "secret": "y"}]}`,
		`{"credentials": [{"principal": "ANY", "secret": "x"}]}`,
		`{"creds": []}`,
		`not json`,
	} {
		if _, err := ParseCredentials([]byte(bad)); err == nil {
			t.Errorf("ParseCredentials(%s) accepted", bad)
		}
	}
}

func TestCertPrincipal(t *testing.T) {
	u, _ := url.Parse("spiffe://corral/fw/analytics")
	for _, tc := range []struct {
		cert *x509.Certificate
		want string
	}{
		{&x509.Certificate{Subject: pkix.Name{CommonName: "analytics"}, URIs: []*url.URL{u}}, "analytics"},
		{&x509.Certificate{URIs: []*url.URL{u}}, "spiffe://corral/fw/analytics"},
		{&x509.Certificate{}, ""},
		{nil, ""},
	} {
		if got := CertPrincipal(tc.cert); got != tc.want {
			t.Errorf("CertPrincipal = %q, want %q", got, tc.want)
		}
	}
}
