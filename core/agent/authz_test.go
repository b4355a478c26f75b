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
	a := &Agent{
		cfg: Config{
			ACLs:        &acl.ACLs{Rules: map[acl.Action][]acl.Rule{acl.AccessSandboxes: {own}}},
			Credentials: creds,
		},
		logger: hclog.NewNullLogger(),
		tasks: map[taskKey]*task{
			{framework: "fw1", task: "t1"}: {framework: &corralpb.FrameworkInfo{Principal: "analytics"}},
		},
	}
	mux := http.NewServeMux()
	mux.Handle("GET /sandbox/{framework}/{task}", a.frameworkACL(acl.AccessSandboxes,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("stdout")) })))
	srv := httptest.NewServer(mux)
	defer srv.Close()

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
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/sandbox/fw1/t1", nil)
			if tc.principal != "" {
				req.SetBasicAuth(tc.principal, tc.secret)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body strings.Builder
			_, _ = io.Copy(&body, resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(body.String(), tc.wantBody) {
				t.Errorf("got %s %q, want %d and a body with %q", resp.Status, body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}
