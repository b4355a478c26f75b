package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/corral-project/corral/core/api"
	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

func entity(v ...string) acl.Entity {
	e, err := acl.NewEntity(v)
	if err != nil {
		panic(err)
	}
	return e
}

// TestOperatorACLs: each operator action the ACLs guard, once allowed and
// once denied, through the real authenticator (basic credentials) and the
// operator API. A denial is 403 naming the principal and the missing
// permission; an allowed call gets past the check (whatever the master
// then answers, never 403).
func TestOperatorACLs(t *testing.T) {
	creds, err := acl.ParseCredentials([]byte(`{"credentials": [{"principal": "ops", "secret": "o"},
  {"principal": "analytics", "secret": "a"}, {"principal": "mallory", "secret": "m"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	acls := &acl.ACLs{Rules: map[acl.Action][]acl.Rule{
		acl.TeardownFrameworks: {{Principals: entity("ops"), Objects: entity("analytics")}},
		acl.UpdateWeights:      {{Principals: entity("ops"), Objects: entity("eng/*")}},
		acl.UpdateQuotas:       {{Principals: entity("ops"), Objects: entity("eng")}},
		acl.UpdateAllocator:    {{Principals: entity("ops"), Objects: entity(acl.Any)}},
		acl.ViewRoles:          {{Principals: entity("ops"), Objects: entity(acl.Any)}, {Principals: entity("analytics"), Objects: entity("eng")}},
	}}
	m, err := master.New(master.Config{ACLs: acls, Roles: map[string]master.RoleConfig{"eng": {Weight: 1}, "eng/ml": {Weight: 1}, "ops": {Weight: 1}}},
		master.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.HandlerWith(m, api.Options{Authn: &authn.Authenticator{Credentials: creds}}))
	t.Cleanup(srv.Close)
	sub, err := m.Subscribe(&corralpb.SubscribeRequest{Framework: &corralpb.FrameworkInfo{Name: "report", Principal: "analytics"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	fw := sub.FrameworkID()

	call := func(principal, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(principal, map[string]string{"ops": "o", "analytics": "a", "mallory": "m"}[principal])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	for _, tc := range []struct {
		action             acl.Action
		method, path, body string
		allowed, denied    string // principals
		object             string // named in the denial
	}{
		{acl.UpdateWeights, "PUT", "/api/v1/roles/eng/ml", `{"weight": 2}`, "ops", "analytics", "eng/ml"},
		{acl.UpdateQuotas, "PUT", "/api/v1/roles/eng", `{"guarantee": "cpus:1"}`, "ops", "mallory", "eng"},
		{acl.UpdateAllocator, "POST", "/api/v1/allocator", `{"name": "priority"}`, "ops", "analytics", "priority"},
		{acl.UpdateAllocator, "POST", "/api/v1/allocator/promote", ``, "ops", "mallory", ""},
		{acl.UpdateAllocator, "POST", "/api/v1/allocator/abort", ``, "ops", "mallory", ""},
		{acl.ViewRoles, "GET", "/api/v1/roles/eng", ``, "analytics", "mallory", "eng"},
		// Last: the allowed teardown removes the framework.
		{acl.TeardownFrameworks, "POST", "/api/v1/frameworks/" + fw + "/teardown", ``, "ops", "mallory", "analytics"},
	} {
		t.Run(string(tc.action)+" "+tc.path, func(t *testing.T) {
			code, body := call(tc.denied, tc.method, tc.path, tc.body)
			want := []string{`principal \"` + tc.denied + `\"`, strings.ReplaceAll(string(tc.action), "_", " "), "acl." + string(tc.action)}
			if tc.object != "" {
				want = append(want, `\"`+tc.object+`\"`)
			}
			for _, w := range want {
				if code != http.StatusForbidden || !strings.Contains(body, w) {
					t.Fatalf("%s as %s: %d %s; want 403 saying %s", tc.path, tc.denied, code, body, w)
				}
			}
			if code, body := call(tc.allowed, tc.method, tc.path, tc.body); code == http.StatusForbidden || code == http.StatusUnauthorized {
				t.Fatalf("%s as %s: %d %s; want it past the ACL check", tc.path, tc.allowed, code, body)
			}
		})
	}
	if _, ok := m.FrameworkPrincipal(fw); !ok {
		t.Fatal("the framework is not known after its teardown")
	}
	// The role list is filtered by view_roles: analytics sees eng only.
	code, body := call("analytics", "GET", "/api/v1/roles", "")
	if code != http.StatusOK || !strings.Contains(body, `"eng"`) || strings.Contains(body, `"eng/ml"`) || strings.Contains(body, `"ops"`) {
		t.Fatalf("roles as analytics: %d %s; want eng only", code, body)
	}
	if code, body := call("ops", "GET", "/api/v1/roles", ""); code != http.StatusOK || !strings.Contains(body, `"eng/ml"`) {
		t.Fatalf("roles as ops: %d %s; want every role", code, body)
	}
}
