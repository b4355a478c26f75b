package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestFrameworkACLPrincipals: the agent's guarded endpoints (sandboxes,
// task exec) know a caller by HTTP basic credentials as well as by client
// certificate, checked against the cluster's credentials file: the
// framework's own principal is let in, another principal is refused with
// 403 naming the permission, and a wrong secret is 401, not anonymous.
func TestFrameworkACLPrincipals(t *testing.T) {
	creds, err := acl.ParseCredentials([]byte(`{"credentials": [
  {"principal": "analytics", "secret": "s3cret"}, {"principal": "mallory", "secret": "m"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	own := acl.Rule{Principals: acl.Entity{Values: []string{"analytics"}}, Objects: acl.Entity{Values: []string{"analytics"}}}
	srv := sandboxServer(t, newSecurity(&acl.ACLs{Rules: map[acl.Action][]acl.Rule{acl.AccessSandboxes: {own}}}, creds))

	tests := []struct {
		name              string
		principal, secret string // "" principal: no credentials
		wantCode          int
		wantBody          string
	}{
		{"framework's own principal", "analytics", "s3cret", http.StatusOK, "stdout"},
		{"another principal", "mallory", "m", http.StatusForbidden, `principal \"mallory\"`},
		{"wrong secret", "analytics", "nope", http.StatusUnauthorized, "wrong secret"},
		{"anonymous", "", "", http.StatusForbidden, "access sandboxes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := getSandbox(t, srv, tc.principal, tc.secret)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("got %d %q, want %d and a body with %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// TestFinishedTaskSandboxKeepsItsOwner: once a task's terminal update is
// acknowledged the agent forgets the task, but its sandbox stays, and the
// framework's principal may still read it (corral exec reads a finished
// task's output while its automatic acknowledgement races ahead: a
// TestACLCluster failure under load). The principal goes when the sandbox
// collector removes the framework's last sandbox.
func TestFinishedTaskSandboxKeepsItsOwner(t *testing.T) {
	creds, err := acl.ParseCredentials([]byte(`{"credentials": [{"principal": "analytics", "secret": "s3cret"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	own := acl.Rule{Principals: acl.Entity{Values: []string{"analytics"}}, Objects: acl.Entity{Values: []string{"analytics"}}}
	srv := sandboxServer(t, newSecurity(&acl.ACLs{Rules: map[acl.Action][]acl.Rule{acl.AccessSandboxes: {own}}}, creds))
	a := srv.agent

	a.mu.Lock()
	delete(a.tasks, taskKey{framework: "fw1", task: "t1"}) // as forgetTask does
	a.mu.Unlock()
	if code, body := getSandbox(t, srv, "analytics", "s3cret"); code != http.StatusOK {
		t.Fatalf("the owner reading a forgotten task's sandbox: got %d %q, want 200", code, body)
	}

	a.forgetOwner("fw1") // the collector removed fw1's directory
	if code, body := getSandbox(t, srv, "analytics", "s3cret"); code != http.StatusForbidden {
		t.Fatalf("after the framework's sandboxes are gone: got %d %q, want 403", code, body)
	}
}

// TestForgetOwnerKeepsALiveFramework: a task of the framework that arrived
// while the collector removed its directory keeps the principal.
func TestForgetOwnerKeepsALiveFramework(t *testing.T) {
	srv := sandboxServer(t, newSecurity(nil, nil))
	srv.agent.forgetOwner("fw1")
	if got := srv.agent.frameworkPrincipal("fw1"); got != "analytics" {
		t.Fatalf("principal of fw1 with a live task after forgetOwner: %q, want analytics", got)
	}
}

// TestSetSecurityReplacesRulesAndCredentials: a reload (SIGHUP) replaces
// the guarded endpoints' ACLs and credentials while the agent serves: a
// principal added to the credentials file and granted by the new rules
// gets in, a removed principal's secret stops working, and nil ACLs turn
// the checks off.
func TestSetSecurityReplacesRulesAndCredentials(t *testing.T) {
	before, err := acl.ParseCredentials([]byte(`{"credentials": [{"principal": "analytics", "secret": "s3cret"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	after, err := acl.ParseCredentials([]byte(`{"credentials": [{"principal": "auditor", "secret": "a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rule := func(principal string) *acl.ACLs {
		return &acl.ACLs{Rules: map[acl.Action][]acl.Rule{acl.AccessSandboxes: {
			{Principals: acl.Entity{Values: []string{principal}}, Objects: acl.Entity{Any: true}},
		}}}
	}
	sec := newSecurity(rule("analytics"), before)
	srv := sandboxServer(t, sec)
	a := srv.agent

	steps := []struct {
		name              string
		reload            func()
		principal, secret string
		wantCode          int
	}{
		{"analytics before the reload", nil, "analytics", "s3cret", http.StatusOK},
		{"auditor before the reload", nil, "auditor", "a", http.StatusUnauthorized},
		{"auditor after the reload", func() { a.SetSecurity(rule("auditor"), after) }, "auditor", "a", http.StatusOK},
		{"analytics's old secret after the reload", nil, "analytics", "s3cret", http.StatusUnauthorized},
		{"anonymous with the ACLs turned off", func() { a.SetSecurity(nil, after) }, "", "", http.StatusOK},
		{"anonymous with ACLs back on", func() { a.SetSecurity(rule("auditor"), after) }, "", "", http.StatusForbidden},
	}
	for _, st := range steps {
		if st.reload != nil {
			st.reload()
		}
		if code, body := getSandbox(t, srv, st.principal, st.secret); code != st.wantCode {
			t.Errorf("%s: got %d %q, want %d", st.name, code, body, st.wantCode)
		}
	}
}

// guardedServer serves one guarded sandbox path of an agent that runs
// task t1 of framework fw1 (principal analytics).
type guardedServer struct {
	*httptest.Server
	agent *Agent
}

func sandboxServer(t *testing.T, sec *security) *guardedServer {
	t.Helper()
	a := &Agent{sec: sec, logger: hclog.NewNullLogger(), tasks: map[taskKey]*task{}}
	a.addTaskLocked(&task{key: taskKey{framework: "fw1", task: "t1"}, framework: &corralpb.FrameworkInfo{Principal: "analytics"}})
	mux := http.NewServeMux()
	mux.Handle("GET /sandbox/{framework}/{task}", a.frameworkACL(acl.AccessSandboxes,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("stdout")) })))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &guardedServer{Server: srv, agent: a}
}

// getSandbox reads fw1/t1's sandbox path, with basic credentials unless
// principal is "".
func getSandbox(t *testing.T, srv *guardedServer, principal, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/sandbox/fw1/t1", nil)
	if principal != "" {
		req.SetBasicAuth(principal, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = io.Copy(&body, resp.Body)
	return resp.StatusCode, body.String()
}
