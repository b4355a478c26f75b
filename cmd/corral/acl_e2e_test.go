package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/corral-project/corral/core/master"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/tlsconfig"
)

// aclCluster is a dev cluster with mutual TLS and ACLs, and the client
// certificates of its principals.
type aclCluster struct {
	t    *testing.T
	dir  string
	addr string
	p    *proc
	// hcl is the config file; header is its tls block.
	hcl, header string
}

// newACLCluster makes a CA, a server certificate (the dev process's
// master and agent, principal "master") and a client certificate per
// principal, and starts `corral dev` with the given acl block.
func newACLCluster(t *testing.T, aclBlock string, principals ...string) *aclCluster {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := tlsconfig.CreateCA(ca, caKey, "acl-test-ca", 0); err != nil {
		t.Fatal(err)
	}
	if err := tlsconfig.CreateCert(ca, caKey, filepath.Join(dir, "master.pem"), filepath.Join(dir, "master-key.pem"),
		tlsconfig.CertRequest{Role: tlsconfig.RoleServer, CommonName: "master"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range principals {
		if err := tlsconfig.CreateCert(ca, caKey, filepath.Join(dir, p+".pem"), filepath.Join(dir, p+"-key.pem"),
			tlsconfig.CertRequest{Role: tlsconfig.RoleClient, CommonName: p}); err != nil {
			t.Fatal(err)
		}
	}
	hcl := filepath.Join(dir, "cluster.hcl")
	src := fmt.Sprintf("tls {\n  ca_file = %q\n  cert_file = %q\n  key_file = %q\n}\n%s", ca,
		filepath.Join(dir, "master.pem"), filepath.Join(dir, "master-key.pem"), aclBlock)
	if err := os.WriteFile(hcl, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startCorral(t, "dev", "-config", hcl, "-master", "127.0.0.1:0", "-address", "127.0.0.1:0",
		"-work-dir", t.TempDir(), "-plugin-dir", filepath.Join(binDir(t), "plugins"))
	c := &aclCluster{t: t, dir: dir, addr: p.waitLine(regexp.MustCompile(`operator API at https://(\S+)`)), p: p, hcl: hcl,
		header: strings.TrimSuffix(src, aclBlock)}
	p.waitLine(agentLine)
	return c
}

// env is the CLI environment of a principal.
func (c *aclCluster) env(principal string) []string {
	return []string{"CORRAL_CACERT=" + filepath.Join(c.dir, "ca.pem"),
		"CORRAL_CLIENT_CERT=" + filepath.Join(c.dir, principal+".pem"), "CORRAL_CLIENT_KEY=" + filepath.Join(c.dir, principal+"-key.pem")}
}

// cli runs bin/corral as principal.
func (c *aclCluster) cli(ctx context.Context, principal string, args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir(c.t), "corral"), args...)
	cmd.Env = append(os.Environ(), c.env(principal)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// client is an HTTPS client presenting principal's certificate.
func (c *aclCluster) client(principal string) *http.Client {
	c.t.Helper()
	pem, err := os.ReadFile(filepath.Join(c.dir, "ca.pem"))
	if err != nil {
		c.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(filepath.Join(c.dir, principal+".pem"), filepath.Join(c.dir, principal+"-key.pem"))
	if err != nil {
		c.t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
}

// state reads /api/v1/state as principal.
func (c *aclCluster) state(principal string) (master.State, error) {
	var s master.State
	resp, err := c.client(principal).Get("https://" + c.addr + "/api/v1/state")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func (c *aclCluster) waitState(principal, what string, cond func(master.State) bool) master.State {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := c.state(principal)
		if err == nil && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s as %s (last error %v, state %+v)", what, principal, err, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const clusterACL = `
acl {
  # Frameworks: analytics in its role, mallory in hers; ops in none.
  register_frameworks {
    principals = ["analytics"]
    roles      = ["analytics"]
  }
  register_frameworks {
    principals = ["mallory"]
    roles      = ["mallory"]
  }
  run_tasks {
    principals = ["analytics", "mallory"]
  }
  # Operators: ops may kill anyone's tasks and drain; a framework may kill
  # its own principal's tasks only.
  kill_tasks {
    principals           = ["ops"]
    framework_principals = ["ANY"]
  }
  kill_tasks {
    principals           = ["analytics"]
    framework_principals = ["analytics"]
  }
  drain_agents {
    principals = ["ops"]
  }
  # Everybody named here reads state; viewer only reads.
  view_frameworks { principals = ["analytics", "ops", "viewer"] }
  view_tasks      { principals = ["analytics", "ops", "viewer"] }
  # The master's usage proxy reads the agent's monitor with its own
  # certificate (it has checked the caller's view_tasks first).
  view_frameworks { principals = ["master"] }
  view_tasks      { principals = ["master"] }
  view_agents     { principals = ["ANY"] }
  view_roles      { principals = ["ANY"] }
  access_sandboxes {
    principals           = ["analytics"]
    framework_principals = ["analytics"]
  }
  # The master's sandbox proxy calls agents with the master's certificate
  # (it has checked the caller first); the dev cluster's agent shares it.
  access_sandboxes { principals = ["master"] }
  # corral task exec: analytics into its own tasks only (and the master's
  # proxy on its behalf).
  exec_tasks {
    principals           = ["analytics"]
    framework_principals = ["analytics"]
  }
  exec_tasks { principals = ["master"] }
  register_agents { principals = ["master"] }
}
`

// TestACLCluster: a dev cluster with mutual TLS and ACLs. A framework
// whose certificate's principal may use its role runs a task; one asking
// for a role it may not use is refused with an error naming principal,
// action and role; a principal cannot kill another principal's task (ops
// can); a read-only principal sees state but cannot drain; the Mesos v1
// scheduler API refuses a forbidden subscription with 403; every refusal
// is counted.
func TestACLCluster(t *testing.T) {
	ctx := context.Background()
	c := newACLCluster(t, clusterACL, "analytics", "mallory", "ops", "viewer", "nobody")
	// The agent's certificate principal ("master") may register.
	c.waitState("ops", "one connected agent", func(s master.State) bool { return len(s.Agents) == 1 && s.Agents[0].Connected })

	code, out, errOut := c.cli(ctx, "analytics", "exec", "-master", c.addr, "-role", "analytics", "-name", "report",
		"--cpus", "0.1", "--mem", "16", "--", "sh", "-c", "echo permitted")
	if code != 0 || !strings.Contains(out, "permitted") {
		t.Fatalf("analytics in its role: exit %d, stdout %q, stderr %q; want 0 and the task's output", code, out, errOut)
	}
	code, out, errOut = c.cli(ctx, "analytics", "exec", "-master", c.addr, "-role", "prod", "--cpus", "0.1", "--mem", "16", "--", "true")
	for _, want := range []string{"permission denied", `principal "analytics"`, "register frameworks", `"prod"`} {
		if code == 0 || !strings.Contains(errOut, want) {
			t.Fatalf("analytics in role prod: exit %d, stdout %q, stderr %q; want a refusal saying %q", code, out, errOut, want)
		}
	}

	// A long task of analytics's; mallory may not kill it, ops may.
	execCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	execDone := make(chan struct{})
	go func() {
		defer close(execDone)
		c.cli(execCtx, "analytics", "exec", "-master", c.addr, "-role", "analytics", "-name", "long",
			"--cpus", "0.1", "--mem", "16", "--", "sleep", "300")
	}()
	var fw master.FrameworkView
	c.waitState("viewer", "the long task running, seen by the read-only principal", func(s master.State) bool {
		for _, f := range s.Frameworks {
			if f.Name == "long" && len(f.Tasks) == 1 && f.Tasks[0].State == "TASK_RUNNING" {
				fw = f
				return true
			}
		}
		return false
	})
	if fw.Principal != "analytics" {
		t.Errorf("the framework's principal is %q, want the certificate's, analytics", fw.Principal)
	}
	taskID := fw.Tasks[0].ID
	// mallory cannot even see the task (view_tasks does not name her), so
	// the CLI cannot find it...
	if code, _, errOut := c.cli(ctx, "mallory", "task", "kill", "-master", c.addr, taskID); code == 0 {
		t.Fatalf("mallory killed analytics's task with the CLI (stderr %q)", errOut)
	}
	// ...and knowing the IDs does not help: the operator API refuses the kill.
	resp, err := c.client("mallory").Post("https://"+c.addr+"/api/v1/tasks/"+fw.ID+"/"+taskID+"/kill", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `principal \"mallory\"`) ||
		!strings.Contains(string(body), "kill tasks") || !strings.Contains(string(body), `\"analytics\"`) {
		t.Fatalf("mallory's kill through the API: %s %s; want 403 naming principal, action and object", resp.Status, body)
	}
	// corral task exec through the master: analytics may run a command
	// beside its own task, mallory may not (exec_tasks).
	if code, out, errOut := c.cli(ctx, "analytics", "task", "exec", "-master", c.addr, taskID, "--", "echo", "inside"); code != 0 || !strings.Contains(out, "inside") {
		t.Errorf("analytics's task exec: exit %d, stdout %q, stderr %q; want 0 and the command's output", code, out, errOut)
	}
	resp, err = c.client("mallory").Post("https://"+c.addr+"/api/v1/agents/"+fw.Tasks[0].AgentID+"/exec/"+fw.ID+"/"+taskID, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "exec_tasks") {
		t.Fatalf("mallory's task exec through the API: %s %s; want 403 naming exec_tasks", resp.Status, body)
	}
	// A task's measured usage through the master follows view_tasks:
	// analytics sees its task's, mallory may not.
	usageURL := "https://" + c.addr + "/api/v1/agents/" + fw.Tasks[0].AgentID + "/usage/" + fw.ID + "/" + taskID
	for principal, want := range map[string]int{"analytics": http.StatusOK, "mallory": http.StatusForbidden} {
		resp, err := c.client(principal).Get(usageURL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == http.StatusOK && !strings.Contains(string(body), `"task_id"`)) {
			t.Errorf("%s reading the task's usage: %s %s; want %d", principal, resp.Status, body, want)
		}
	}
	// The sandbox through the master: analytics reads its own, viewer may not.
	sandbox := "https://" + c.addr + "/api/v1/agents/" + fw.Tasks[0].AgentID + "/sandbox/" + fw.ID + "/" + taskID + "/stdout"
	for principal, want := range map[string]int{"analytics": http.StatusOK, "viewer": http.StatusForbidden} {
		resp, err := c.client(principal).Get(sandbox)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s reading the task's sandbox: %s, want %d", principal, resp.Status, want)
		}
	}
	// The agent's own sandbox API checks the caller too: viewer cannot
	// read around the master.
	agentURL := ""
	if st, err := c.state("ops"); err == nil && len(st.Agents) == 1 {
		agentURL = st.Agents[0].URL
	}
	direct := agentURL + "/api/v1/sandbox/" + fw.ID + "/" + taskID + "/stdout"
	for principal, want := range map[string]int{"analytics": http.StatusOK, "viewer": http.StatusForbidden} {
		resp, err := c.client(principal).Get(direct)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s reading the sandbox on the agent: %s %s, want %d", principal, resp.Status, body, want)
		}
	}
	// The agent's own state and monitor list only what the caller may
	// view: analytics sees its task, mallory sees none of it, and asking
	// the monitor for analytics's framework by name is refused.
	for principal, want := range map[string]bool{"analytics": true, "mallory": false} {
		for _, path := range []string{"/api/v1/state", "/api/v1/monitor"} {
			resp, err := c.client(principal).Get(agentURL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.Contains(string(body), taskID) != want {
				t.Errorf("%s reading the agent's %s: %s %s; want 200 and the task listed: %v", principal, path, resp.Status, body, want)
			}
		}
	}
	resp, err = c.client("mallory").Get(agentURL + "/api/v1/monitor?framework_id=" + url.QueryEscape(fw.ID))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `principal \"mallory\"`) {
		t.Errorf("mallory asking the agent's monitor for analytics's framework: %s %s; want 403 naming her", resp.Status, body)
	}
	if code, _, errOut := c.cli(ctx, "ops", "task", "kill", "-master", c.addr, taskID); code != 0 {
		t.Fatalf("ops killing the task: exit %d, stderr %q", code, errOut)
	}
	c.waitState("ops", "the long task killed by ops", func(s master.State) bool {
		// corral exec tears its framework down once its task ended.
		for _, f := range append(s.Frameworks, s.CompletedFrameworks...) {
			for _, tk := range f.Completed {
				if tk.ID == taskID && tk.State == "TASK_KILLED" {
					return true
				}
			}
		}
		return false
	})
	cancel()
	<-execDone

	// viewer reads state but cannot drain; mallory sees no frameworks.
	st, err := c.state("viewer")
	if err != nil || len(st.Agents) != 1 || len(st.Frameworks)+len(st.CompletedFrameworks) == 0 {
		t.Fatalf("viewer's state: %v, %+v; want the agent and the frameworks", err, st)
	}
	agentID := st.Agents[0].ID
	code, _, errOut = c.cli(ctx, "viewer", "agent", "drain", "-master", c.addr, agentID)
	if code == 0 || !strings.Contains(errOut, "permission denied") || !strings.Contains(errOut, "drain agents") {
		t.Fatalf("viewer draining: exit %d, stderr %q; want a refusal naming drain agents", code, errOut)
	}
	if ms, err := c.state("mallory"); err != nil || len(ms.Frameworks)+len(ms.CompletedFrameworks) != 0 {
		t.Errorf("mallory's state: %v, %d frameworks; want none (view_frameworks does not name her)", err, len(ms.Frameworks)+len(ms.CompletedFrameworks))
	}
	// A SIGHUP re-reads the acl block: viewer may now drain.
	granted := strings.Replace(clusterACL, `principals = ["ops"]
  }
  # Everybody`, `principals = ["ops", "viewer"]
  }
  # Everybody`, 1)
	if granted == clusterACL {
		t.Fatal("the test's ACL text changed; update the reload step")
	}
	if err := os.WriteFile(c.hcl, []byte(c.header+granted), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.p.waitLine(regexp.MustCompile(`(ACLs replaced)`))
	// The agent takes the new rules too (TestSetSecurityReplacesRulesAndCredentials
	// in core/agent checks what they then let in).
	c.p.waitLine(regexp.MustCompile(`(agent ACLs and credentials replaced)`))
	if code, _, errOut := c.cli(ctx, "viewer", "agent", "drain", "-master", c.addr, agentID); code != 0 {
		t.Fatalf("viewer draining after the reload granted it: exit %d, stderr %q", code, errOut)
	}

	// The Mesos v1 scheduler API: mallory subscribing in analytics's role.
	sub := `{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "intruder", "roles": ["analytics"], "capabilities": [{"type": "MULTI_ROLE"}]}}}`
	req, _ := http.NewRequest(http.MethodPost, "https://"+c.addr+"/api/v1/scheduler", bytes.NewBufferString(sub))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err = c.client("mallory").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `principal "mallory"`) || !strings.Contains(string(body), `role "analytics"`) {
		t.Fatalf("Mesos SUBSCRIBE by mallory in role analytics: %s %q; want 403 naming principal and role", resp.Status, body)
	}

	// Every refusal was counted, by action.
	resp, err = c.client("viewer").Get("https://" + c.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, action := range []string{"register_frameworks", "kill_tasks", "drain_agents", "access_sandboxes"} {
		if !regexp.MustCompile(`corral_master_authorization_denied_total\{action="` + action + `"\} [1-9]`).Match(metrics) {
			t.Errorf("no refusal of %s counted in /metrics", action)
		}
	}
}

// TestCredentialsCluster: without TLS, principals come from a Mesos-style
// credentials file. `corral exec` with CORRAL_PRINCIPAL and CORRAL_SECRET
// runs in the role its principal may use, a wrong secret is refused as an
// authentication failure, and a principal the ACLs deny is refused on the
// operator API and on the Mesos scheduler API (basic credentials there).
func TestCredentialsCluster(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(creds, []byte(`{"credentials": [{"principal": "analytics", "secret": "s3cret"},
  {"principal": "guest", "secret": "guest-secret"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Permissive, so that the (unauthenticated) agent registers; the
	// rules below deny what they name.
	hcl := filepath.Join(dir, "cluster.hcl")
	if err := os.WriteFile(hcl, []byte(fmt.Sprintf(`credentials_file = %q
acl {
  permissive = true
  register_frameworks {
    principals = ["analytics"]
    roles      = ["analytics"]
  }
  register_frameworks {
    principals = ["ANY"]
    roles      = ["NONE"]
  }
  drain_agents {
    principals = ["guest"]
    agents     = ["NONE"]
  }
}
`, creds)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _ := startDev(t, "-config", hcl, "-plugin-dir", filepath.Join(binDir(t), "plugins"))
	cli := func(principal, secret string, args ...string) (int, string, string) {
		t.Helper()
		return credCLI(t, principal, secret, args...)
	}
	if code, out, errOut := cli("analytics", "s3cret", "exec", "-master", addr, "-role", "analytics", "--cpus", "0.1", "--mem", "16", "--", "echo", "with-credentials"); code != 0 || !strings.Contains(out, "with-credentials") {
		t.Fatalf("analytics with credentials: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := cli("analytics", "wrong", "exec", "-master", addr, "-role", "analytics", "--cpus", "0.1", "--mem", "16", "--", "true"); code == 0 || !strings.Contains(errOut, "wrong secret") {
		t.Fatalf("a wrong secret: exit %d, stderr %q; want an authentication failure", code, errOut)
	}
	if code, _, errOut := cli("guest", "guest-secret", "exec", "-master", addr, "-role", "analytics", "--cpus", "0.1", "--mem", "16", "--", "true"); code == 0 || !strings.Contains(errOut, `principal "guest"`) {
		t.Fatalf("guest in role analytics: exit %d, stderr %q; want a refusal naming guest", code, errOut)
	}
	st := waitState(t, addr, "the agent", func(s master.State) bool { return len(s.Agents) == 1 })
	if code, _, errOut := cli("guest", "guest-secret", "agent", "drain", "-master", addr, st.Agents[0].ID); code == 0 || !strings.Contains(errOut, "an acl rule denies it") {
		t.Fatalf("guest draining: exit %d, stderr %q; want a refusal by rule", code, errOut)
	}

	// The Mesos v1 scheduler API with basic credentials.
	sub := `{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "m", "roles": ["analytics"], "capabilities": [{"type": "MULTI_ROLE"}]}}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/scheduler", strings.NewReader(sub))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth("guest", "guest-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `principal "guest"`) {
		t.Fatalf("Mesos SUBSCRIBE as guest: %s %q; want 403 naming guest", resp.Status, body)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/state", nil)
	req.SetBasicAuth("guest", "nope")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong secret on the operator API: %s, want 401", resp.Status)
	}

	// A bearer token: the secret alone names its principal.
	if code, out, errOut := envCLI(t, []string{"CORRAL_TOKEN=s3cret"}, "exec", "-master", addr, "-role", "analytics", "--cpus", "0.1", "--mem", "16", "--", "echo", "with-token"); code != 0 || !strings.Contains(out, "with-token") {
		t.Fatalf("analytics with a bearer token: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := envCLI(t, []string{"CORRAL_TOKEN=guest-secret"}, "exec", "-master", addr, "-role", "analytics", "--cpus", "0.1", "--mem", "16", "--", "true"); code == 0 || !strings.Contains(errOut, `principal "guest"`) {
		t.Fatalf("guest's token in role analytics: exit %d, stderr %q; want a refusal naming guest", code, errOut)
	}
	for _, tc := range []struct {
		token string
		code  int
	}{{"s3cret", http.StatusOK}, {"not-a-token", http.StatusUnauthorized}} {
		req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/state", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Fatalf("bearer token %q on the operator API: %s %q, want %d", tc.token, resp.Status, body, tc.code)
		}
	}
}

// credCLI runs bin/corral with CORRAL_PRINCIPAL and CORRAL_SECRET (none
// for principal "").
func credCLI(t *testing.T, principal, secret string, args ...string) (int, string, string) {
	t.Helper()
	var env []string
	if principal != "" {
		env = []string{"CORRAL_PRINCIPAL=" + principal, "CORRAL_SECRET=" + secret}
	}
	return envCLI(t, env, args...)
}

// envCLI runs bin/corral with env added to the test's environment.
func envCLI(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	// Bounded, so that a CLI that never gives up fails the test instead of
	// hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
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

// writeFile writes a test fixture.
func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTaskUserCluster: the run_tasks rules and the agent's user checks
// together, on a dev cluster whose agent refuses root tasks and registers
// with its own credential. analytics runs a task as nobody (it really runs
// as nobody); as alice the master refuses it (an acl rule); as root and as
// a user the host lacks the master lets it through and the agent refuses
// it, naming the user; a task as the CLI's own user, root, is refused
// too. (A task naming no user at all, run as the agent's user, is
// core/agent's TestTaskUsers.)
func TestTaskUserCluster(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching a task's user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no nobody user: %v", err)
	}
	dir := t.TempDir()
	creds := writeFile(t, filepath.Join(dir, "credentials.json"), `{"credentials": [
  {"principal": "analytics", "secret": "s3cret"}, {"principal": "agent-good", "secret": "agent-secret"}]}`)
	agentCred := writeFile(t, filepath.Join(dir, "agent.json"), `{"principal": "agent-good", "secret": "agent-secret"}`)
	hcl := writeFile(t, filepath.Join(dir, "cluster.hcl"), fmt.Sprintf(`credentials_file = %q
agent {
  allow_root_tasks = false
  credential_file  = %q
}
acl {
  # Permissive, so that the anonymous run below reads its sandbox on
  # the agent (no access_sandboxes rule names anyone).
  permissive = true
  run_tasks {
    principals = ["analytics"]
    users      = ["nobody", "root", "corral-no-such-user"]
  }
  run_tasks {
    principals = ["ANY"]
    users      = ["NONE"]
  }
  register_agents { principals = ["agent-good"] }
  register_agents {
    principals = ["ANY"]
    agents     = ["NONE"]
  }
}
`, creds, agentCred))
	addr, _ := startDevConfig(t, hcl, t.TempDir())
	run := func(principal string, args ...string) (int, string, string) {
		t.Helper()
		base := []string{"exec", "-master", addr, "--cpus", "0.1", "--mem", "16"}
		return credCLI(t, principal, "s3cret", append(base, args...)...)
	}

	if code, out, errOut := run("analytics", "--user", "nobody", "--", "sh", "-c", "id -u && echo mine > f && cat f"); code != 0 || out != nobody.Uid+"\nmine\n" {
		t.Fatalf("analytics as nobody: exit %d, stdout %q, stderr %q; want 0, nobody's uid %s and the file it wrote", code, out, errOut, nobody.Uid)
	}
	code, _, errOut := run("analytics", "--user", "alice", "--", "true")
	for _, want := range []string{"permission denied", `principal "analytics"`, "run tasks", `user "alice"`, "an acl rule denies it"} {
		if code != exitNotPlaced || !strings.Contains(errOut, want) {
			t.Fatalf("analytics as alice: exit %d, stderr %q; want %d and a refusal saying %q", code, errOut, exitNotPlaced, want)
		}
	}
	code, _, errOut = run("analytics", "--user", "root", "--", "true")
	for _, want := range []string{`task user "root" is root (uid 0)`, "does not run tasks as root", "allow_root_tasks"} {
		if code != exitCannotStart || !strings.Contains(errOut, want) {
			t.Fatalf("analytics as root: exit %d, stderr %q; want %d and the agent's refusal saying %q", code, errOut, exitCannotStart, want)
		}
	}
	code, _, errOut = run("analytics", "--user", "corral-no-such-user", "--", "true")
	if code != exitCannotStart || !strings.Contains(errOut, `task user "corral-no-such-user" does not exist on agent`) {
		t.Fatalf("analytics as a missing user: exit %d, stderr %q; want %d and the agent naming the user", code, errOut, exitCannotStart)
	}
	// Anonymous: no rule names it, the permissive default lets it through
	// the master; corral exec's framework user is the CLI's own, root here,
	// which the agent refuses.
	code, _, errOut = run("", "--", "true")
	if code != exitCannotStart || !strings.Contains(errOut, `task user "root" is root (uid 0)`) {
		t.Fatalf("an anonymous task as the CLI's user, root: exit %d, stderr %q; want %d and the agent's root refusal", code, errOut, exitCannotStart)
	}
}

// TestAgentPrincipals: agents register as the principal of their
// credential (agent { credential_file }). The dev cluster's agent,
// agent-good, is allowed by a register_agents rule; a second agent whose
// credential names agent-rogue is refused by rule, one with a wrong secret
// fails authentication, and the cluster keeps its one agent.
func TestAgentPrincipals(t *testing.T) {
	dir := t.TempDir()
	creds := writeFile(t, filepath.Join(dir, "credentials.json"), `{"credentials": [
  {"principal": "agent-good", "secret": "good-secret"}, {"principal": "agent-rogue", "secret": "rogue-secret"}]}`)
	good := writeFile(t, filepath.Join(dir, "good.json"), `{"principal": "agent-good", "secret": "good-secret"}`)
	acls := `acl {
  # Permissive for the test's anonymous state reads; the rules decide
  # every authenticated agent.
  permissive = true
  register_agents { principals = ["agent-good"] }
  register_agents {
    principals = ["ANY"]
    agents     = ["NONE"]
  }
}
`
	hcl := writeFile(t, filepath.Join(dir, "cluster.hcl"), fmt.Sprintf("credentials_file = %q\nagent {\n  credential_file = %q\n}\n%s", creds, good, acls))
	addr, _ := startDevConfig(t, hcl, t.TempDir())

	for _, tc := range []struct{ name, cred, want string }{
		{"rogue", `{"principal": "agent-rogue", "secret": "rogue-secret"}`, `principal \"agent-rogue\" may not register agents`},
		{"wrong-secret", `{"principal": "agent-good", "secret": "guess"}`, "authentication failed"},
	} {
		cred := writeFile(t, filepath.Join(dir, tc.name+".json"), tc.cred)
		cfg := writeFile(t, filepath.Join(dir, tc.name+".hcl"), fmt.Sprintf("agent {\n  credential_file = %q\n}\n", cred))
		p := startCorral(t, "agent", "-config", cfg, "-master", addr, "-address", "127.0.0.1:0", "-work-dir", t.TempDir(),
			"-plugin-dir", filepath.Join(binDir(t), "plugins"), "-resources", "cpus:1;mem:256")
		p.waitLine(regexp.MustCompile(`(` + regexp.QuoteMeta(tc.want) + `)`))
		p.stop()
	}
	st := waitState(t, addr, "the dev agent", func(s master.State) bool { return len(s.Agents) == 1 })
	if len(st.Agents) != 1 || !st.Agents[0].Connected {
		t.Fatalf("agents %+v, want only the dev cluster's, connected", st.Agents)
	}
}

// TestSubscriptionLimitCluster: master { max_subscriptions_per_principal }
// counts a principal's subscriptions on the Mesos and the gRPC scheduler
// APIs together. With a cap of 1, analytics's Mesos subscription holds it;
// a second Mesos SUBSCRIBE gets 429 naming principal and cap, corral exec
// (gRPC) is refused with ResourceExhausted and gives up at its connect
// timeout saying why, another principal still subscribes, and the held
// subscription keeps its stream.
func TestSubscriptionLimitCluster(t *testing.T) {
	dir := t.TempDir()
	creds := writeFile(t, filepath.Join(dir, "credentials.json"), `{"credentials": [
  {"principal": "analytics", "secret": "s3cret"}, {"principal": "guest", "secret": "guest-secret"}]}`)
	hcl := writeFile(t, filepath.Join(dir, "cluster.hcl"), fmt.Sprintf(`credentials_file = %q
master {
  max_subscriptions_per_principal = 1
}
`, creds))
	addr, _ := startDevConfig(t, hcl, t.TempDir())

	subscribe := func(ctx context.Context, principal, secret string) *http.Response {
		t.Helper()
		// Suppressed, so that it holds no offers the guest's task needs.
		sub := `{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "nobody", "name": "held"}, "suppressed_roles": ["*"]}}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/scheduler", strings.NewReader(sub))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(principal, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := subscribe(ctx, "analytics", "s3cret")
	defer held.Body.Close()
	if held.StatusCode != http.StatusOK || held.Header.Get("Mesos-Stream-Id") == "" {
		t.Fatalf("analytics's first Mesos subscription: %s, want 200 with a stream", held.Status)
	}
	// Read SUBSCRIBED off the held stream, in the background from then on.
	events := make(chan string, 100)
	go func() {
		defer close(events)
		buf := make([]byte, 64<<10)
		for {
			n, err := held.Body.Read(buf)
			if n > 0 {
				events <- string(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case ev := <-events:
		if !strings.Contains(ev, "SUBSCRIBED") {
			t.Fatalf("the held stream's first record %q, want SUBSCRIBED", ev)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no SUBSCRIBED on the held stream within 60s")
	}

	second := subscribe(ctx, "analytics", "s3cret")
	body, _ := io.ReadAll(second.Body)
	second.Body.Close()
	for _, want := range []string{`principal "analytics"`, "max_subscriptions_per_principal = 1"} {
		if second.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), want) {
			t.Fatalf("analytics's second Mesos subscription: %s %q; want 429 saying %s", second.Status, body, want)
		}
	}
	code, _, errOut := credCLI(t, "analytics", "s3cret", "exec", "-master", addr, "--connect-timeout", "5s", "--cpus", "0.1", "--mem", "16", "--", "true")
	if code != exitNotPlaced || !strings.Contains(errOut, "ResourceExhausted") || !strings.Contains(errOut, `principal "analytics"`) {
		t.Fatalf("corral exec as analytics at the cap: exit %d, stderr %q; want %d and the refusal", code, errOut, exitNotPlaced)
	}
	if code, out, errOut := credCLI(t, "guest", "guest-secret", "exec", "-master", addr, "--timeout", "2m", "--cpus", "0.1", "--mem", "16", "--", "echo", "guest-ran"); code != 0 || !strings.Contains(out, "guest-ran") {
		t.Fatalf("guest, under its own cap: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	st := waitState(t, addr, "analytics's held framework", func(s master.State) bool {
		for _, f := range s.Frameworks {
			if f.Principal == "analytics" && f.Connected {
				return true
			}
		}
		return false
	})
	n := 0
	for _, f := range st.Frameworks {
		if f.Principal == "analytics" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("analytics has %d frameworks, want only the held one", n)
	}
}

// TestSchedulerLimitsCluster: the other per-framework limits, on a dev
// cluster: past framework_call_burst a Mesos framework's calls get 429
// naming the limit, a Mesos body beyond 16 MiB is refused with 400, and a
// gRPC request beyond max_message_bytes (plus 64 KiB) is refused with
// ResourceExhausted; the framework's stream survives all three.
func TestSchedulerLimitsCluster(t *testing.T) {
	dir := t.TempDir()
	hcl := writeFile(t, filepath.Join(dir, "cluster.hcl"), `master {
  framework_call_rate  = 0.01
  framework_call_burst = 2
  max_message_bytes    = 1024
}
`)
	addr, _ := startDevConfig(t, hcl, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	post := func(ctx context.Context, body io.Reader, streamID string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/scheduler", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if streamID != "" {
			req.Header.Set("Mesos-Stream-Id", streamID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	sub := post(ctx, strings.NewReader(`{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "nobody", "name": "limited"}, "suppressed_roles": ["*"]}}`), "")
	defer sub.Body.Close()
	streamID := sub.Header.Get("Mesos-Stream-Id")
	buf := make([]byte, 64<<10)
	var first string
	for !strings.Contains(first, "SUBSCRIBED") || !strings.Contains(first, "}}") {
		n, err := sub.Body.Read(buf)
		first += string(buf[:n])
		if err != nil {
			t.Fatalf("reading SUBSCRIBED: %v (read %q)", err, first)
		}
	}
	m := regexp.MustCompile(`"framework_id"\s*:\s*\{\s*"value"\s*:\s*"([^"]+)"`).FindStringSubmatch(first)
	if streamID == "" || m == nil {
		t.Fatalf("subscription: stream %q, first record %q", streamID, first)
	}
	fid := m[1]

	// A body beyond the Mesos API's 16 MiB.
	big := post(ctx, io.MultiReader(strings.NewReader(`{"type": "REVIVE", "framework_id": {"value": "`+fid+`"}, "x": "`),
		strings.NewReader(strings.Repeat("a", 17<<20)), strings.NewReader(`"}`)), streamID)
	body, _ := io.ReadAll(big.Body)
	big.Body.Close()
	if big.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "too large") {
		t.Fatalf("a 17 MiB Mesos call: %s %q; want 400 saying too large", big.Status, body)
	}

	// A gRPC request beyond max_message_bytes + 64 KiB.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = corralpb.NewSchedulerClient(conn).Message(ctx, &corralpb.MessageRequest{
		Header: &corralpb.CallHeader{FrameworkId: fid}, Data: make([]byte, 128<<10)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("a 128 KiB gRPC message: %v, want ResourceExhausted for its size", err)
	}

	// Calls past the burst of 2.
	got429 := ""
	for i := 0; i < 5 && got429 == ""; i++ {
		resp := post(ctx, strings.NewReader(`{"type": "REVIVE", "framework_id": {"value": "`+fid+`"}}`), streamID)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
		case http.StatusTooManyRequests:
			got429 = string(body)
		default:
			t.Fatalf("REVIVE %d: %s %q", i, resp.Status, body)
		}
	}
	if !strings.Contains(got429, "calls per second") {
		t.Fatalf("no 429 naming the calls-per-second limit within 5 calls past a burst of 2 (last %q)", got429)
	}
	st := waitState(t, addr, "the limited framework connected", func(s master.State) bool {
		return len(s.Frameworks) == 1 && s.Frameworks[0].Connected
	})
	if st.Frameworks[0].ID != fid {
		t.Fatalf("framework %s, want %s", st.Frameworks[0].ID, fid)
	}
}
