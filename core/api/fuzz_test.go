package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/corral-project/corral/core/api"
	"github.com/corral-project/corral/core/master"
)

// FuzzOperatorAPI sends arbitrary write requests to the operator API: the
// answer is a 2xx or a 4xx with a JSON error, never a panic or a 500, and a
// refused request changes nothing (the roles stay as configured).
func FuzzOperatorAPI(f *testing.F) {
	for _, s := range [][2]string{
		{"/api/v1/roles/a", `{"weight": 2}`}, {"/api/v1/roles/a", `{"weight": -1}`}, {"/api/v1/roles/a", `{"weight": 1e309}`},
		{"/api/v1/roles/..", `{}`}, {"/api/v1/roles/a", `{"quota": {"guarantee": "cpus:NaN"}}`},
		{"/api/v1/allocator", `{"name": "../../bin/sh"}`}, {"/api/v1/allocator", `{"name": "drf", "shadow": -3}`},
		{"/api/v1/tasks/fw/t/kill", `{"grace_seconds": "x"}`}, {"/api/v1/frameworks/%2e%2e/teardown", ``},
		{"/api/v1/agents/a/drain", `{"deadline": "-5m"}`}, {"/api/v1/agents/a/undrain", `[]`}, {"/api/v1", `{"type": "GET_STATE"}`},
	} {
		f.Add("POST", s[0], s[1])
		f.Add("PUT", s[0], s[1])
	}
	m, err := master.New(master.Config{Roles: map[string]master.RoleConfig{"a": {Weight: 1}}}, master.Deps{})
	if err != nil {
		f.Fatal(err)
	}
	h := api.Handler(m)
	before := m.Roles()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u, err := url.ParseRequestURI(path)
		if err != nil || method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
		req.Method, req.URL, req.RequestURI = method, u, u.RequestURI()
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q answered %d: %s", method, path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && strings.HasPrefix(u.Path, "/api/v1/roles/") && !rolesEqual(before, m.Roles()) {
			t.Fatalf("refused %s %s %q (%d) changed the roles: %+v, were %+v", method, path, body, w.Code, m.Roles(), before)
		}
		if w.Code < 400 {
			before = m.Roles()
		}
	})
}

func rolesEqual(a, b []master.RoleView) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Weight != b[i].Weight || a[i].Priority != b[i].Priority ||
			a[i].Guarantee != b[i].Guarantee || a[i].Limit != b[i].Limit {
			return false
		}
	}
	return true
}
