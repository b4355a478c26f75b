package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/core/master"
)

// go test ./cmd/corral -run TestCLIGolden -update rewrites the files under
// testdata/golden/ from what the CLI prints now; review them as a diff.
var update = flag.Bool("update", false, "rewrite the CLI golden files in testdata/golden")

// TestCLIGolden pins what users see: help texts, usage errors with their
// exit codes, and tables and JSON printed from a fixed cluster state
// (testdata/golden/state.json, served as a master would serve it).
func TestCLIGolden(t *testing.T) {
	t.Setenv("CORRAL_MASTER", "")
	raw, err := os.ReadFile("testdata/golden/state.json")
	if err != nil {
		t.Fatal(err)
	}
	var st master.State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("state.json: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/state", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(raw) })
	mux.HandleFunc("GET /api/v1/roles", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(st.Roles) })
	mux.HandleFunc("GET /api/v1/roles/{name...}", func(w http.ResponseWriter, r *http.Request) {
		for _, role := range st.Roles {
			if role.Name == r.PathValue("name") {
				_ = json.NewEncoder(w).Encode(role)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"role not found"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	for _, tc := range []struct {
		name string
		args []string
	}{
		// help: every command, exit 0, on stdout
		{"help-root", []string{"-h"}},
		{"help-root-help", []string{"help"}},
		{"help-exec", []string{"exec", "-h"}},
		{"help-exec-via-help", []string{"help", "exec"}},
		{"help-task", []string{"task", "--help"}},
		{"help-task-exec", []string{"task", "exec", "-h"}},
		{"help-task-logs", []string{"task", "logs", "-help"}},
		{"help-framework", []string{"framework", "-h"}},
		{"help-agent", []string{"agent", "-h"}},
		{"help-agent-drain", []string{"agent", "drain", "-h"}},
		{"help-role", []string{"role", "-h"}},
		{"help-allocator", []string{"allocator", "-h"}},
		{"help-status", []string{"status", "-h"}},
		{"help-dev", []string{"dev", "-h"}},
		{"help-master", []string{"master", "-h"}},
		{"help-tls", []string{"tls", "-h"}},
		{"help-tls-cert-create", []string{"tls", "cert", "create", "-h"}},
		{"help-sim", []string{"sim", "-h"}},
		{"help-trace", []string{"trace", "record", "-h"}},
		{"help-completion", []string{"completion", "-h"}},
		// usage errors: a clear line, the usage, exit 2 (125 for exec)
		{"error-no-command", nil},
		{"error-typo", []string{"stauts"}},
		{"error-typo-sub", []string{"task", "lsit"}},
		{"error-missing-sub", []string{"role"}},
		{"error-missing-arg", []string{"task", "show"}},
		{"error-unknown-flag", []string{"task", "list", "-bogus"}},
		{"error-exec-bad-quantity", []string{"exec", "-mem", "lots", "--", "true"}},
		{"error-exec-duration-unit", []string{"exec", "-timeout", "5", "--", "true"}},
		{"error-output", []string{"agent", "list", "--output", "yaml"}},
		{"error-role-set-nothing", []string{"role", "set", "eng"}},
		// tables and JSON from the fixed state
		{"status", []string{"status", "-master", addr}},
		{"agent-list", []string{"agent", "list", "-master", addr}},
		{"agent-list-json", []string{"agent", "list", "--master", addr, "--output", "json"}},
		{"agent-show", []string{"agent", "show", "agent-a", "-master", addr}},
		{"agent-show-unknown", []string{"agent", "show", "agent-z", "-master", addr}},
		{"task-list", []string{"task", "list", "-master", addr}},
		{"task-list-json", []string{"task", "list", "-json", "-master", addr}},
		{"task-list-empty-json", []string{"task", "list", "-state", "killed", "-json", "-master", addr}},
		{"task-show", []string{"task", "show", "web-1", "-master", addr}},
		{"task-show-completed", []string{"task", "show", "-master=" + addr, "web-0"}},
		{"task-show-json", []string{"task", "show", "web-1", "-json", "-master", addr}},
		{"framework-list", []string{"framework", "list", "-master", addr}},
		{"framework-show-json", []string{"framework", "show", "fw-1", "-json", "-master", addr}},
		{"role-list", []string{"role", "list", "-master", addr}},
		{"role-show-json", []string{"role", "show", "eng", "-json", "-master", addr}},
		// shell completion: subcommands, flags, and IDs from the master
		{"complete-subcommand", []string{"__complete", "task", "l"}},
		{"complete-flag", []string{"__complete", "exec", "--he"}},
		{"complete-task-id", []string{"__complete", "task", "show", "--master", addr, ""}},
		{"complete-agent-id", []string{"__complete", "agent", "drain", "--master", addr, "agent-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			got := fmt.Sprintf("$ corral %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", strings.Join(tc.args, " "), code,
				stdout.String(), stderr.String())
			got = strings.ReplaceAll(got, addr, "MASTER")
			path := filepath.Join("testdata", "golden", tc.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("corral %s: output differs from %s (rerun with -update and review the diff):\n%s", strings.Join(tc.args, " "), path, got)
			}
		})
	}
}
