package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corral-project/corral/sdk/tlsconfig"
)

// BenchmarkExecRoundTripTLS is the cost of the cluster's mutual TLS on one
// `corral exec -- true` (a one-task framework: subscribe, offer, launch,
// output streamed from the agent, teardown): two dev clusters in the same
// run, one plain and one with mutual TLS everywhere (CLI and scheduler to
// master, agent to master, CLI to agent), exec'd alternately so both see
// the same machine load. Host <-> plugin TLS is on in both (it has no
// switch); BenchmarkPluginMTLS in core/pluginhost measures it.
//
//	CORRAL_BIN_DIR=$PWD/bin go test -run '^$' -bench ExecRoundTripTLS -benchtime 20x ./cmd/corral/
func BenchmarkExecRoundTripTLS(b *testing.B) {
	dir := b.TempDir()
	ca, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := tlsconfig.CreateCA(ca, caKey, "bench-ca", 0); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		role tlsconfig.Role
	}{{"master", tlsconfig.RoleServer}, {"cli", tlsconfig.RoleClient}} {
		if err := tlsconfig.CreateCert(ca, caKey, filepath.Join(dir, c.name+".pem"), filepath.Join(dir, c.name+"-key.pem"),
			tlsconfig.CertRequest{Role: c.role, CommonName: c.name}); err != nil {
			b.Fatal(err)
		}
	}
	hcl := filepath.Join(dir, "tls.hcl")
	if err := os.WriteFile(hcl, []byte(fmt.Sprintf("tls {\n  ca_file = %q\n  cert_file = %q\n  key_file = %q\n}\n",
		ca, filepath.Join(dir, "master.pem"), filepath.Join(dir, "master-key.pem"))), 0o644); err != nil {
		b.Fatal(err)
	}
	plainAddr, _ := startDev(b)
	p := startCorral(b, "dev", "-config", hcl, "-master", "127.0.0.1:0", "-address", "127.0.0.1:0",
		"-work-dir", b.TempDir(), "-plugin-dir", filepath.Join(binDir(b), "plugins"))
	tlsAddr := p.waitLine(regexp.MustCompile(`operator API at https://(\S+)`))
	p.waitLine(agentLine)
	tlsEnv := []string{"CORRAL_CACERT=" + ca, "CORRAL_CLIENT_CERT=" + filepath.Join(dir, "cli.pem"), "CORRAL_CLIENT_KEY=" + filepath.Join(dir, "cli-key.pem")}

	ctx := context.Background()
	run := func(addr string, env []string) time.Duration {
		start := time.Now()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir(b), "corral"), "exec", "-q", "--master", addr, "--", "true")
		cmd.Env = append(os.Environ(), env...)
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			b.Fatalf("exec on %s: %v %s", addr, err, errb.String())
		}
		return time.Since(start)
	}
	// Warm both (page cache, first allocation).
	run(plainAddr, nil)
	run(tlsAddr, tlsEnv)
	var plain, withTLS []time.Duration
	b.ResetTimer()
	for range b.N {
		plain = append(plain, run(plainAddr, nil))
		withTLS = append(withTLS, run(tlsAddr, tlsEnv))
	}
	b.StopTimer()
	mp, mt := medianOf(plain), medianOf(withTLS)
	b.ReportMetric(float64(mp.Microseconds())/1000, "plain-median-ms")
	b.ReportMetric(float64(mt.Microseconds())/1000, "mtls-median-ms")
	b.ReportMetric(float64(mt)/float64(mp), "x-plain")
}
