package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/tlsconfig"
)

// TestMutualTLSCluster: a dev cluster configured with a CA and
// certificates made by `corral tls` runs a task end to end over mutual TLS
// (the CLI's scheduler to the master, the agent to the master, the CLI to
// the agent's sandbox), and refuses what it must: a plain-text client, a
// client without a certificate, a certificate from another CA and an
// expired certificate, each with an error that says so.
func TestMutualTLSCluster(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, args := range [][]string{
		{"tls", "ca", "create", "-dir", dir},
		{"tls", "cert", "create", "-server", "-dir", dir, "-ca", filepath.Join(dir, "corral-ca.pem"), "-key", filepath.Join(dir, "corral-ca-key.pem")},
		{"tls", "cert", "create", "-client", "-name", "alice", "-dir", dir, "-ca", filepath.Join(dir, "corral-ca.pem"), "-key", filepath.Join(dir, "corral-ca-key.pem")},
	} {
		if code, out, errOut := runCLI(t, ctx, args...); code != 0 {
			t.Fatalf("corral %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	if code, _, errOut := runCLI(t, ctx, "tls", "ca", "create", "-dir", dir); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("a second CA over the first: exit %d, %q; want a refusal (it would orphan every certificate)", code, errOut)
	}
	// Another CA, and an expired certificate from the right CA.
	other := t.TempDir()
	if err := tlsconfig.CreateCA(filepath.Join(other, "ca.pem"), filepath.Join(other, "ca-key.pem"), "rogue", 0); err != nil {
		t.Fatal(err)
	}
	if err := tlsconfig.CreateCert(filepath.Join(other, "ca.pem"), filepath.Join(other, "ca-key.pem"), filepath.Join(other, "rogue.pem"),
		filepath.Join(other, "rogue-key.pem"), tlsconfig.CertRequest{Role: tlsconfig.RoleClient, CommonName: "mallory"}); err != nil {
		t.Fatal(err)
	}
	if err := tlsconfig.CreateCert(filepath.Join(dir, "corral-ca.pem"), filepath.Join(dir, "corral-ca-key.pem"), filepath.Join(other, "expired.pem"),
		filepath.Join(other, "expired-key.pem"), tlsconfig.CertRequest{Role: tlsconfig.RoleClient, CommonName: "bob",
			IssuedAt: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}

	hcl := filepath.Join(dir, "tls.hcl")
	if err := os.WriteFile(hcl, []byte(fmt.Sprintf(`tls {
  ca_file   = %q
  cert_file = %q
  key_file  = %q
}
`, filepath.Join(dir, "corral-ca.pem"), filepath.Join(dir, "corral-server-master.pem"), filepath.Join(dir, "corral-server-master-key.pem"))), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startCorral(t, "dev", "-config", hcl, "-master", "127.0.0.1:0", "-address", "127.0.0.1:0", "-work-dir", t.TempDir(), "-plugin-dir", filepath.Join(binDir(t), "plugins"))
	addr := p.waitLine(regexp.MustCompile(`operator API at https://(\S+)`))
	if url := p.waitLine(agentLine); !strings.HasPrefix(url, "https://") {
		t.Fatalf("the agent serves %s, want https", url)
	}

	alice := []string{"CORRAL_CACERT=" + filepath.Join(dir, "corral-ca.pem"),
		"CORRAL_CLIENT_CERT=" + filepath.Join(dir, "corral-client-alice.pem"), "CORRAL_CLIENT_KEY=" + filepath.Join(dir, "corral-client-alice-key.pem")}
	cli := func(env []string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir(t), "corral"), args...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String(), errb.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	// The agent registers over mutual TLS.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out, _ := cli(alice, "agent", "list", "-master", addr)
		if code == 0 && strings.Contains(out, "agent-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agent registered over TLS: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, out, errOut := cli(alice, "exec", "-master", addr, "--cpus", "0.1", "--mem", "16", "--", "sh", "-c", "echo over-tls; exit 3")
	if code != 3 || !strings.Contains(out, "over-tls") {
		t.Fatalf("corral exec over mutual TLS: exit %d, stdout %q, stderr %q; want 3 and the task's output", code, out, errOut)
	}

	refusals := []struct {
		name string
		env  []string
		want string
	}{
		{"plain text", nil, "speaks TLS"},
		{"no client certificate", []string{"CORRAL_CACERT=" + filepath.Join(dir, "corral-ca.pem")}, "requires a client certificate"},
		{"another CA's certificate", []string{"CORRAL_CACERT=" + filepath.Join(dir, "corral-ca.pem"),
			"CORRAL_CLIENT_CERT=" + filepath.Join(other, "rogue.pem"), "CORRAL_CLIENT_KEY=" + filepath.Join(other, "rogue-key.pem")}, "rogue.pem is not signed by the CA"},
		{"an expired certificate", []string{"CORRAL_CACERT=" + filepath.Join(dir, "corral-ca.pem"),
			"CORRAL_CLIENT_CERT=" + filepath.Join(other, "expired.pem"), "CORRAL_CLIENT_KEY=" + filepath.Join(other, "expired-key.pem")}, "expired.pem expired at"},
		{"a server checked against the wrong CA", []string{"CORRAL_CACERT=" + filepath.Join(other, "ca.pem"),
			"CORRAL_CLIENT_CERT=" + filepath.Join(other, "rogue.pem"), "CORRAL_CLIENT_KEY=" + filepath.Join(other, "rogue-key.pem")}, "certificate signed by unknown authority"},
		{"a missing CA file", []string{"CORRAL_CACERT=" + filepath.Join(other, "nope.pem")}, "nope.pem"},
	}
	for _, r := range refusals {
		code, out, errOut := cli(r.env, "status", "-master", addr)
		if code == 0 || !strings.Contains(errOut, r.want) {
			t.Errorf("%s: corral status exit %d, stdout %q, stderr %q; want a failure saying %q", r.name, code, out, errOut, r.want)
		}
	}
	// The master itself refuses those certificates, whatever a client
	// checks on its side.
	for _, c := range []struct{ name, cert, key string }{
		{"none", "", ""},
		{"another CA's", filepath.Join(other, "rogue.pem"), filepath.Join(other, "rogue-key.pem")},
		{"expired", filepath.Join(other, "expired.pem"), filepath.Join(other, "expired-key.pem")},
	} {
		tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the server's checks are under test
		if c.cert != "" {
			pair, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		if resp, err := client.Get("https://" + addr + "/api/v1/state"); err == nil {
			resp.Body.Close()
			t.Errorf("a client with %s certificate read the state: %s", c.name, resp.Status)
		}
	}
}
