package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/resources"
)

func ptr[T any](v T) *T { return &v }

func TestParseRoleArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    *roleCommand
		wantErr string // substring; flag.ErrHelp for "-h"
	}{
		{name: "list", args: []string{"list"}, want: &roleCommand{verb: "list", master: "127.0.0.1:5050"}},
		{name: "list json from env", args: []string{"list", "-json"}, env: map[string]string{"CORRAL_MASTER": "m:1"},
			want: &roleCommand{verb: "list", master: "m:1", json: true}},
		{name: "show with flags after the name", args: []string{"show", "eng/ml", "-master", "h:2", "-json"},
			want: &roleCommand{verb: "show", name: "eng/ml", master: "h:2", json: true}},
		{name: "show with flags before the name", args: []string{"show", "-json", "eng/ml"},
			want: &roleCommand{verb: "show", name: "eng/ml", master: "127.0.0.1:5050", json: true}},
		{name: "show default role", args: []string{"show", "*"}, want: &roleCommand{verb: "show", name: "*", master: "127.0.0.1:5050"}},
		{name: "set everything", args: []string{"set", "eng/ml", "-weight", "2", "-priority", "-3", "-guarantee", "cpus:8;mem:16384", "-limit", "cpus:32"},
			want: &roleCommand{verb: "set", name: "eng/ml", master: "127.0.0.1:5050", update: roleUpdate{
				Weight: ptr(2.0), Priority: ptr(int64(-3)), Guarantee: ptr("cpus:8;mem:16384"), Limit: ptr("cpus:32")}}},
		{name: "set only priority 0", args: []string{"set", "eng", "-priority", "0"},
			want: &roleCommand{verb: "set", name: "eng", master: "127.0.0.1:5050", update: roleUpdate{Priority: ptr(int64(0))}}},
		{name: "set clears quota", args: []string{"set", "eng", "-guarantee", "", "-limit", ""},
			want: &roleCommand{verb: "set", name: "eng", master: "127.0.0.1:5050", update: roleUpdate{Guarantee: ptr(""), Limit: ptr("")}}},
		{name: "clearing the default role's quota is fine", args: []string{"set", "*", "-limit", ""},
			want: &roleCommand{verb: "set", name: "*", master: "127.0.0.1:5050", update: roleUpdate{Limit: ptr("")}}},

		{name: "no subcommand", args: nil, wantErr: "missing subcommand"},
		{name: "unknown subcommand", args: []string{"delete", "x"}, wantErr: `unknown subcommand "delete"`},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
		{name: "help of set", args: []string{"set", "-h"}, wantErr: flag.ErrHelp.Error()},
		{name: "list with a name", args: []string{"list", "eng"}, wantErr: "list takes no arguments"},
		{name: "show without a name", args: []string{"show"}, wantErr: "show takes one role name, got 0"},
		{name: "show two names", args: []string{"show", "a", "b"}, wantErr: "show takes one role name, got 2"},
		{name: "bad role name", args: []string{"show", "eng//ml"}, wantErr: `role "eng//ml": empty path component`},
		{name: "set nothing", args: []string{"set", "eng"}, wantErr: "at least one of -weight"},
		{name: "set flag on show", args: []string{"show", "eng", "-weight", "2"}, wantErr: "flag provided but not defined: -weight"},
		{name: "zero weight", args: []string{"set", "eng", "-weight", "0"}, wantErr: "-weight must be a number greater than 0, got 0"},
		{name: "negative weight", args: []string{"set", "eng", "-weight", "-1"}, wantErr: "greater than 0"},
		{name: "NaN weight", args: []string{"set", "eng", "-weight", "NaN"}, wantErr: "greater than 0"},
		{name: "infinite weight", args: []string{"set", "eng", "-weight", "+Inf"}, wantErr: "greater than 0"},
		{name: "weight not a number", args: []string{"set", "eng", "-weight", "lots"}, wantErr: `invalid value "lots" for flag -weight`},
		{name: "fractional priority", args: []string{"set", "eng", "-priority", "1.5"}, wantErr: `invalid value "1.5" for flag -priority`},
		{name: "bad guarantee", args: []string{"set", "eng", "-guarantee", "cpus:many"}, wantErr: `-guarantee: resources "cpus:many": resource "cpus": "many" is not a number`},
		{name: "range limit", args: []string{"set", "eng", "-limit", "ports:[1-9]"}, wantErr: "-limit: resources \"ports:[1-9]\": quota applies to scalar resources only"},
		{name: "guarantee over limit", args: []string{"set", "eng", "-guarantee", "cpus:8", "-limit", "cpus:4"},
			wantErr: "the guarantee exceeds the limit on cpus 8 > 4"},
		{name: "quota on the default role", args: []string{"set", "*", "-guarantee", "cpus:1"}, wantErr: `-guarantee: the default role "*" cannot have a quota`},
		{name: "empty master", args: []string{"list", "-master", ""}, wantErr: "-master is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRoleArgs(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				var ue *usageError
				if !errors.Is(err, flag.ErrHelp) && !errors.As(err, &ue) {
					t.Errorf("err %T is not a usage error (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The body of PUT carries exactly the flags given: absent means unchanged
// on the master, so an extra zero would silently reset a setting.
func TestRoleUpdateJSON(t *testing.T) {
	tests := []struct {
		update roleUpdate
		want   string
	}{
		{roleUpdate{Weight: ptr(2.5)}, `{"weight":2.5}`},
		{roleUpdate{Priority: ptr(int64(0))}, `{"priority":0}`},
		{roleUpdate{Guarantee: ptr(""), Limit: ptr("cpus:32")}, `{"guarantee":"","limit":"cpus:32"}`},
		{roleUpdate{Weight: ptr(1.0), Priority: ptr(int64(10)), Guarantee: ptr("cpus:8;mem:16384"), Limit: ptr("cpus:32")},
			`{"weight":1,"priority":10,"guarantee":"cpus:8;mem:16384","limit":"cpus:32"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.update)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("got %s, want %s", b, tt.want)
		}
	}
}

var sampleRoles = []roleView{
	{Name: "*", Weight: 1, Allocated: "cpus:0.5;mem:64", DominantShare: 0.0625, Frameworks: []string{"fw-1"}},
	{Name: "eng/ml", Weight: 2, Priority: 10, Guarantee: "cpus:8;mem:16384", Limit: "cpus:32", DominantShare: 1.0 / 3,
		Frameworks: []string{"fw-2", "fw-3"}},
}

func TestPrintRoles(t *testing.T) {
	var b bytes.Buffer
	printRoles(&b, sampleRoles)
	want := "" +
		"ROLE    WEIGHT  PRIORITY  GUARANTEE         LIMIT    ALLOCATED        DRF SHARE  FRAMEWORKS\n" +
		"*       1       0         -                 -        cpus:0.5;mem:64  0.062      1\n" +
		"eng/ml  2       10        cpus:8;mem:16384  cpus:32  -                0.333      2\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestPrintRole(t *testing.T) {
	var b bytes.Buffer
	printRole(&b, sampleRoles[1])
	want := "" +
		"role        eng/ml\n" +
		"weight      2\n" +
		"priority    10\n" +
		"guarantee   cpus:8;mem:16384\n" +
		"limit       cpus:32\n" +
		"allocated   -\n" +
		"drf share   0.333\n" +
		"frameworks  fw-2, fw-3\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printRole(&b, roleView{Name: "idle", Weight: 1})
	if !strings.Contains(b.String(), "frameworks  -\n") {
		t.Errorf("a role without frameworks should show -, got\n%s", b.String())
	}
}

// fakeRolesAPI serves the operator API's role contract from memory, and
// records the PUT bodies it got.
type fakeRolesAPI struct {
	mu    sync.Mutex
	roles map[string]roleView
	puts  []string // "name body"
}

func newFakeRolesAPI(t *testing.T) (*fakeRolesAPI, string) {
	api := &fakeRolesAPI{roles: map[string]roleView{}}
	for _, r := range sampleRoles {
		api.roles[r.Name] = r
	}
	mux := http.NewServeMux()
	writeErr := func(w http.ResponseWriter, code int, msg string) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	mux.HandleFunc("GET /api/v1/roles", func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		defer api.mu.Unlock()
		var out []roleView
		for _, v := range api.roles {
			out = append(out, v)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /api/v1/roles/{name...}", func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		defer api.mu.Unlock()
		v, ok := api.roles[r.PathValue("name")]
		if !ok {
			writeErr(w, http.StatusNotFound, "role "+r.PathValue("name")+" is not known to the master")
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	})
	mux.HandleFunc("PUT /api/v1/roles/{name...}", func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		defer api.mu.Unlock()
		name := r.PathValue("name")
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		api.puts = append(api.puts, name+" "+body.String())
		var u roleUpdate
		if err := json.Unmarshal(body.Bytes(), &u); err != nil {
			writeErr(w, http.StatusBadRequest, "bad body: "+err.Error())
			return
		}
		v, ok := api.roles[name]
		if !ok {
			v = roleView{Name: name, Weight: 1}
		}
		if u.Limit != nil && *u.Limit == "cpus:1" && v.Guarantee != "" {
			writeErr(w, http.StatusBadRequest, "guarantee "+v.Guarantee+" exceeds limit cpus:1")
			return
		}
		if u.Weight != nil {
			v.Weight = *u.Weight
		}
		if u.Priority != nil {
			v.Priority = *u.Priority
		}
		if u.Guarantee != nil {
			v.Guarantee = *u.Guarantee
		}
		if u.Limit != nil {
			v.Limit = *u.Limit
		}
		api.roles[name] = v
		_ = json.NewEncoder(w).Encode(v)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return api, strings.TrimPrefix(srv.URL, "http://")
}

// The cases run in order against one fake master: later ones see what
// earlier ones set.
func TestRoleCommandAgainstAPI(t *testing.T) {
	api, addr := newFakeRolesAPI(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of stderr
		wantPut  string   // the PUT the master got, "" for none
	}{
		{name: "list", args: []string{"list"}, wantOut: []string{"ROLE ", "eng/ml  2       10        cpus:8;mem:16384  cpus:32"}},
		{name: "show", args: []string{"show", "eng/ml"}, wantOut: []string{"role        eng/ml\n", "frameworks  fw-2, fw-3\n"}},
		{name: "show json", args: []string{"show", "eng/ml", "-json"}, wantOut: []string{`"name":"eng/ml"`, `"guarantee":"cpus:8;mem:16384"`}},
		{name: "show unknown", args: []string{"show", "nope/x"}, wantCode: 1,
			wantErr: "corral role show: role nope/x is not known to the master\n"},
		{name: "set new role", args: []string{"set", "team/a?b", "-weight", "3"},
			wantOut: []string{"role        team/a?b\n", "weight      3\n"}, wantPut: `team/a?b {"weight":3}`},
		{name: "set clears guarantee", args: []string{"set", "eng/ml", "-guarantee", "", "-json"},
			wantOut: []string{`"guarantee":""`, `"limit":"cpus:32"`}, wantPut: `eng/ml {"guarantee":""}`},
		{name: "set the default role", args: []string{"set", "*", "-priority", "1", "-limit", ""}, wantPut: `* {"priority":1,"limit":""}`},
		{name: "set a guarantee", args: []string{"set", "team/a?b", "-guarantee", "cpus:2"}, wantPut: `team/a?b {"guarantee":"cpus:2"}`},
		{name: "server 400", args: []string{"set", "team/a?b", "-limit", "cpus:1"}, wantCode: 1,
			wantErr: "corral role set: guarantee cpus:2 exceeds limit cpus:1\n", wantPut: `team/a?b {"limit":"cpus:1"}`},
		{name: "local check sends nothing", args: []string{"set", "eng", "-weight", "0"}, wantCode: 2,
			wantErr: "corral role: -weight must be a number greater than 0, got 0\n\nusage: corral role list"},
		{name: "help", args: []string{"-h"}, wantOut: []string{"usage: corral role list", "-guarantee R"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api.mu.Lock()
			before := len(api.puts)
			api.mu.Unlock()
			var stdout, stderr bytes.Buffer
			args := tt.args
			if tt.args[0] != "-h" {
				args = append([]string{tt.args[0], "-master", addr}, tt.args[1:]...)
			}
			code := runRole(context.Background(), args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if tt.wantErr == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantErr)
			}
			api.mu.Lock()
			puts := append([]string(nil), api.puts[before:]...)
			api.mu.Unlock()
			var want []string
			if tt.wantPut != "" {
				want = []string{tt.wantPut}
			}
			for i := range puts {
				puts[i] = strings.TrimSpace(puts[i])
			}
			if !reflect.DeepEqual(puts, want) {
				t.Errorf("PUTs = %q, want %q", puts, want)
			}
		})
	}
}

func TestRoleCommandUnreachableAndForeignAnswers(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler()) // a master without the roles API
	addr := strings.TrimPrefix(srv.URL, "http://")
	var stdout, stderr bytes.Buffer
	if code := runRole(context.Background(), []string{"show", "eng", "-master", addr}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if want := "GET http://" + addr + "/api/v1/roles/eng answered 404 Not Found: 404 page not found"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
	srv.Close() // now nothing listens there
	stderr.Reset()
	if code := runRole(context.Background(), []string{"list", "-master", addr}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if want := "corral role list: cannot reach the master at " + addr; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}

// roleAPIServed reports whether the master at addr serves the per-role
// operator API. The endpoint lands separately in core/api; until then this
// test skips instead of failing. Once served, an unknown role is a JSON 404.
func roleAPIServed(t *testing.T, addr string) bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/roles/corral-probe/unknown")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	return json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != ""
}

// A role change made with the CLI reaches the master, is refused with the
// master's own message when invalid, and survives a master restart (the
// standalone registry under the master's work dir).
func TestRoleCLIAgainstRealMaster(t *testing.T) {
	work := t.TempDir()
	m1 := startCorral(t, "master", "-master", "127.0.0.1:0", "-work-dir", work)
	addr := m1.waitLine(masterLine)
	if !roleAPIServed(t, addr) {
		t.Skip("the master does not serve /api/v1/roles/{name} yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, ctx, append(append([]string{"role"}, args...), "-master", addr)...)
	}
	show := func() roleView {
		t.Helper()
		code, out, errOut := cli("show", "eng/ml", "-json")
		if code != 0 {
			t.Fatalf("role show: exit %d, stderr %q", code, errOut)
		}
		var v roleView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("role show -json printed %q: %v", out, err)
		}
		return v
	}
	sameResources := func(what, got, want string) {
		t.Helper()
		g, err1 := resources.Parse(got)
		w, err2 := resources.Parse(want)
		if err1 != nil || err2 != nil || !g.Equal(w) {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}

	code, out, errOut := cli("set", "eng/ml", "-weight", "2", "-priority", "10", "-guarantee", "cpus:0.5;mem:64", "-limit", "cpus:1")
	if code != 0 || !strings.Contains(out, "role        eng/ml\n") || !strings.Contains(out, "weight      2\n") {
		t.Fatalf("role set: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	v := show()
	if v.Name != "eng/ml" || v.Weight != 2 || v.Priority != 10 {
		t.Errorf("role after set = %+v", v)
	}
	sameResources("guarantee", v.Guarantee, "cpus:0.5;mem:64")
	sameResources("limit", v.Limit, "cpus:1")

	// Only what is given changes.
	if code, _, errOut := cli("set", "eng/ml", "-priority", "3"); code != 0 {
		t.Fatalf("role set -priority: exit %d, stderr %q", code, errOut)
	}
	if v := show(); v.Weight != 2 || v.Priority != 3 || v.Limit == "" {
		t.Errorf("after setting the priority alone: %+v", v)
	}

	// The master knows the guarantee; only it can refuse this limit.
	code, _, errOut = cli("set", "eng/ml", "-limit", "cpus:0.25")
	if code != 1 || !strings.HasPrefix(errOut, "corral role set: ") || strings.Contains(errOut, "usage:") {
		t.Errorf("limit below the guarantee: exit %d, stderr %q; want 1 and the master's message", code, errOut)
	}
	if code, _, errOut := cli("show", "no/such/role"); code != 1 || !strings.HasPrefix(errOut, "corral role show: ") {
		t.Errorf("unknown role: exit %d, stderr %q; want 1 and the master's message", code, errOut)
	}
	code, out, _ = cli("list")
	if code != 0 || !regexp.MustCompile(`(?m)^eng/ml +2 +3 `).MatchString(out) {
		t.Errorf("role list: exit %d, stdout\n%s", code, out)
	}

	m1.stop()
	m2 := startCorral(t, "master", "-master", "127.0.0.1:0", "-work-dir", work)
	addr = m2.waitLine(masterLine)
	v = show()
	if v.Weight != 2 || v.Priority != 3 {
		t.Errorf("after a master restart: %+v, want weight 2 priority 3", v)
	}
	sameResources("guarantee after restart", v.Guarantee, "cpus:0.5;mem:64")
}
