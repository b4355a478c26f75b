package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/core/api"
	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/resources"
)

func startAPI(t *testing.T, cfg master.Config) (*master.Master, string) {
	t.Helper()
	m, err := master.New(cfg, master.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(m)) // listens on 127.0.0.1, port chosen at run time
	t.Cleanup(srv.Close)
	return m, srv.URL
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q, want JSON", method, url, ct)
	}
	return resp.StatusCode, raw
}

func decodeRole(t *testing.T, raw []byte) master.RoleView {
	t.Helper()
	var v master.RoleView
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

// errorOf checks that raw is exactly {"error": "..."} and returns the text.
func errorOf(t *testing.T, raw []byte) string {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	msg, ok := body["error"].(string)
	if !ok || len(body) != 1 {
		t.Fatalf(`error body %s, want {"error": "..."}`, raw)
	}
	return msg
}

func TestRolesAPI(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "registry.json")
	_, url := startAPI(t, master.Config{RegistryPath: registry, Roles: map[string]master.RoleConfig{
		"eng": {Weight: 1, Limit: resources.MustParse("cpus:40")},
	}})

	code, raw := do(t, http.MethodPut, url+"/api/v1/roles/eng/ml",
		`{"weight": 2, "priority": 10, "guarantee": "cpus:8;mem:16384", "limit": "cpus:32"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT eng/ml: %d %s", code, raw)
	}
	want := master.RoleView{Name: "eng/ml", Weight: 2, Priority: 10, Guarantee: "cpus:8;mem:16384", Limit: "cpus:32", Frameworks: []string{}}
	if v := decodeRole(t, raw); !sameRole(v, want) {
		t.Fatalf("PUT eng/ml answered %+v, want %+v", v, want)
	}
	// Every field of the contract is present, including empty ones.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"name", "weight", "priority", "guarantee", "limit", "allocated", "dominant_share", "frameworks"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("role JSON lacks %q: %s", f, raw)
		}
	}
	if string(fields["frameworks"]) != "[]" || string(fields["allocated"]) != `""` {
		t.Errorf("empty frameworks/allocated encoded as %s / %s, want [] and \"\"", fields["frameworks"], fields["allocated"])
	}

	code, raw = do(t, http.MethodGet, url+"/api/v1/roles/eng/ml", "")
	if code != http.StatusOK || !sameRole(decodeRole(t, raw), want) {
		t.Fatalf("GET eng/ml: %d %s", code, raw)
	}

	// Absent fields stay; "" clears a guarantee or limit.
	code, raw = do(t, http.MethodPut, url+"/api/v1/roles/eng/ml", `{"priority": -3, "limit": ""}`)
	want.Priority, want.Limit = -3, ""
	if code != http.StatusOK || !sameRole(decodeRole(t, raw), want) {
		t.Fatalf("PUT partial: %d %s, want %+v", code, raw, want)
	}

	code, raw = do(t, http.MethodGet, url+"/api/v1/roles", "")
	var list []master.RoleView
	if err := json.Unmarshal(raw, &list); code != http.StatusOK || err != nil || len(list) != 2 ||
		list[0].Name != "eng" || list[0].Limit != "cpus:40" || !sameRole(list[1], want) {
		t.Fatalf("GET roles: %d %s", code, raw)
	}

	code, raw = do(t, http.MethodGet, url+"/api/v1/roles/nope/x", "")
	if code != http.StatusNotFound || errorOf(t, raw) != `role "nope/x" is not known to the master` {
		t.Fatalf("GET unknown role: %d %s", code, raw)
	}

	// The change is in the registry: a new master on it sees it.
	m2, err := master.New(master.Config{RegistryPath: registry}, master.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m2.Role("eng/ml"); !ok || !sameRole(v, want) {
		t.Fatalf("a new master on the registry has eng/ml = %+v, %v", v, ok)
	}
}

func TestRolesAPIRejectsBadInput(t *testing.T) {
	_, url := startAPI(t, master.Config{Roles: map[string]master.RoleConfig{
		"eng":    {Limit: resources.MustParse("cpus:10")},
		"eng/ml": {Guarantee: resources.MustParse("cpus:6")},
	}})
	cases := []struct {
		name, role, body, want string
	}{
		{"unknown field", "ops", `{"wieght": 2}`,
			`request body: unknown field "wieght" (known: weight, priority, guarantee, limit)`},
		{"weight as a string", "ops", `{"weight": "2"}`, "weight: want a number, got a JSON string"},
		{"zero weight", "ops", `{"weight": 0}`, "weight: must be a positive number, got 0"},
		{"negative weight", "ops", `{"weight": -1.5}`, "weight: must be a positive number, got -1.5"},
		{"fractional priority", "ops", `{"priority": 1.5}`, "priority: want an integer, got a JSON number 1.5"},
		{"guarantee not a resource string", "ops", `{"guarantee": "cpus:x"}`, `guarantee: resource "cpus": "x" is not a number`},
		{"limit without a value", "ops", `{"limit": "cpus"}`, `limit: resource "cpus": want name:value`},
		{"negative guarantee", "ops", `{"guarantee": "mem:-1"}`, `guarantee: resource "mem": quantity -1 is negative`},
		{"guarantee above limit", "ops", `{"guarantee": "cpus:8", "limit": "cpus:4"}`,
			"guarantee: guarantee cpus:8 is above the limit cpus:4 on cpus (8 > 4)"},
		{"ranges in quota", "ops", `{"limit": "ports:[1000-2000]"}`, "limit: quota takes scalar resources only, got ports:[1000-2000]"},
		{"quota on the default role", "*", `{"guarantee": "cpus:1"}`,
			`guarantee: the default role "*" cannot have quota (a guarantee or a limit)`},
		{"bad role name", "-eng", `{"weight": 2}`, `name: role "-eng": path component "-eng" starts with '-'`},
		{"siblings above the parent's limit", "eng/web", `{"guarantee": "cpus:5"}`,
			`guarantee: guarantee cpus:5 of role "eng/web" and its siblings' (eng/ml cpus:6) add up to cpus:11, above the limit cpus:10 of parent role "eng"`},
		{"parent limit below children", "eng", `{"limit": "cpus:5"}`,
			`limit: limit cpus:5 of role "eng" is below the guarantees of its children (eng/ml cpus:6), which add up to cpus:6`},
		{"not JSON", "ops", `{"weight": 2`, "request body is not valid JSON: unexpected EOF"},
		{"empty body", "ops", ``, `request body is empty; want a JSON object with weight, priority, guarantee, limit`},
		{"not an object", "ops", `[1]`, "request body: want a JSON object, got a JSON array"},
		{"two objects", "ops", `{"weight": 2} {"weight": 3}`, "request body: want one JSON object, found more data after it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, raw := do(t, http.MethodPut, url+"/api/v1/roles/"+tc.role, tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", code, raw)
			}
			if msg := errorOf(t, raw); !strings.HasPrefix(msg, tc.want) {
				t.Fatalf("error %q, want it to start with %q", msg, tc.want)
			}
		})
	}
	// Nothing was created or changed by the refused requests.
	code, raw := do(t, http.MethodGet, url+"/api/v1/roles", "")
	var list []master.RoleView
	if err := json.Unmarshal(raw, &list); code != http.StatusOK || err != nil || len(list) != 2 || list[0].Limit != "cpus:10" {
		t.Fatalf("roles after refused changes: %d %s", code, raw)
	}
}

func sameRole(a, b master.RoleView) bool {
	return a.Name == b.Name && a.Weight == b.Weight && a.Priority == b.Priority && a.Guarantee == b.Guarantee &&
		a.Limit == b.Limit && strings.Join(a.Frameworks, ",") == strings.Join(b.Frameworks, ",")
}

// TestAllocatorAPIRejectsBadInput: a swap request with bad input is
// refused with a message naming the problem (this master has no plugin
// launcher, so a well-formed one is refused as unswappable).
func TestAllocatorAPIRejectsBadInput(t *testing.T) {
	_, url := startAPI(t, master.Config{})
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"unknown field", `{"name": "drf", "shadw": 3}`, 400, `request body: unknown field "shadw" (known: name, config, shadow, promote, wait)`},
		{"bad promote", `{"name": "drf", "promote": "later"}`, 400, `promote: want "auto" or "manual", got "later"`},
		{"shadow as a string", `{"name": "drf", "shadow": "3"}`, 400, "shadow: want int, got a JSON string"},
		{"empty body", ``, 400, "request body is empty; want a JSON object with name, config, shadow, promote, wait"},
		{"no launcher", `{"name": "drf"}`, 400, "this master's allocator cannot be swapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, raw := do(t, http.MethodPost, url+"/api/v1/allocator", tc.body)
			if code != tc.code {
				t.Fatalf("got %d %s, want %d", code, raw, tc.code)
			}
			if msg := errorOf(t, raw); !strings.HasPrefix(msg, tc.want) {
				t.Fatalf("error %q, want it to start with %q", msg, tc.want)
			}
		})
	}
	for _, verb := range []string{"promote", "abort"} {
		code, raw := do(t, http.MethodPost, url+"/api/v1/allocator/"+verb, "")
		if code != http.StatusConflict || errorOf(t, raw) != "no allocator swap is in progress" {
			t.Errorf("%s with nothing in progress: %d %s", verb, code, raw)
		}
	}
	code, raw := do(t, http.MethodGet, url+"/api/v1/allocator", "")
	var st master.AllocatorStatus
	if err := json.Unmarshal(raw, &st); code != http.StatusOK || err != nil || st.Active != nil || st.Generation != 0 {
		t.Fatalf("GET /api/v1/allocator: %d %s", code, raw)
	}
}

// TestOperatorEndpointsRefuseUnknowns: kill and sandbox reads name what
// does not exist; history is a list from the start.
func TestOperatorEndpointsRefuseUnknowns(t *testing.T) {
	_, url := startAPI(t, master.Config{})
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{http.MethodPost, "/api/v1/tasks/fw-x/t1/kill", "", 404, "framework fw-x is not registered"},
		{http.MethodPost, "/api/v1/tasks/fw-x/t1/kill", `{"grace": 1}`, 400, `request body: unknown field "grace" (known: grace_seconds)`},
		{http.MethodGet, "/api/v1/agents/a-x/sandbox/fw/t1/stdout", "", 404, "agent a-x is not registered"},
		{http.MethodGet, "/api/v1/agents/a-x/sandbox/fw/t1", "", 404, "agent a-x is not registered"},
	} {
		code, raw := do(t, tc.method, url+tc.path, tc.body)
		if code != tc.code || errorOf(t, raw) != tc.want {
			t.Errorf("%s %s: %d %s, want %d %q", tc.method, tc.path, code, raw, tc.code, tc.want)
		}
	}
	code, raw := do(t, http.MethodGet, url+"/api/v1/history", "")
	if code != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(string(raw)), "[") {
		t.Errorf("GET /api/v1/history: %d %s", code, raw)
	}
}
