package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
)

func TestFileSHA256(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// sha256sum of "test\n".
	if got, err := FileSHA256(path); err != nil || got != "f2ca1bb6c7e907d06dafe4687e579fce76b37e4e93b7605022da52e6ccc26fd2" {
		t.Fatalf("FileSHA256 = %q, %v", got, err)
	}
	if _, err := FileSHA256("/nonexistent/f"); err == nil || !strings.Contains(err.Error(), "/nonexistent/f") {
		t.Fatalf("missing file: %v, want an error naming the path", err)
	}
}

func TestResolveCarriesSHA256(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	cat := NewCatalog(t.TempDir(), []conf.Plugin{{Name: "t", Path: testPlugin, SHA256: sum}})
	spec, err := cat.Resolve(base.KindAllocator, "t")
	if err != nil || spec.SHA256 != sum {
		t.Fatalf("Resolve = %+v, %v; want SHA256 %s", spec, err, sum)
	}
}

// witnessPlugin writes a script that leaves a mark each time it runs, then
// becomes the test plugin: proof of whether anything was executed.
func witnessPlugin(t *testing.T) (path, marker string) {
	t.Helper()
	dir := t.TempDir()
	path, marker = filepath.Join(dir, "plugin"), filepath.Join(dir, "ran")
	script := "#!/bin/sh\necho ran >> " + marker + "\nexec " + testPlugin + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, marker
}

func TestChecksum(t *testing.T) {
	for _, kind := range []string{base.KindAllocator, base.KindIsolator, base.KindExecutor} {
		t.Run(kind, func(t *testing.T) {
			// go-plugin makes its socket directory under TMPDIR (or the
			// executor's SocketDir): a refused start must leave none behind.
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			path, marker := witnessPlugin(t)
			sum, err := FileSHA256(path)
			if err != nil {
				t.Fatal(err)
			}
			wrong := strings.Repeat("0", 64)
			spec := Spec{Kind: kind, Name: "pinned", Path: path, Args: []string{"-kind=" + kind}, SHA256: wrong}
			eopts := execOptions(t)
			start := func(spec Spec) (*Instance, error) {
				if kind == base.KindExecutor {
					inst, _, err := StartExecutor(context.Background(), spec, eopts)
					return inst, err
				}
				return Start(context.Background(), spec, Options{})
			}

			inst, err := start(spec)
			if err == nil {
				inst.Kill()
				t.Fatal("started a binary whose sha256 differs from the pinned one")
			}
			var ce *ChecksumError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *ChecksumError", err, err)
			}
			want := kind + ` plugin "pinned": checksum mismatch for ` + path + ": expected sha256 " + wrong + ", actual " + sum
			if err.Error() != want || ce.Path != path || ce.Expected != wrong || ce.Actual != sum {
				t.Fatalf("error %q (%+v), want %q", err, ce, want)
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused binary ran (marker %s: %v)", marker, err)
			}
			for _, dir := range []string{tmp, eopts.SocketDir} {
				if left, _ := os.ReadDir(dir); len(left) > 0 {
					t.Errorf("refused start left %v in %s", left, dir)
				}
			}

			// The right sum, in any case, starts it.
			spec.SHA256 = strings.ToUpper(sum)
			inst, err = start(spec)
			if err != nil {
				t.Fatal(err)
			}
			killOnCleanup(t, inst.Pid())
			defer inst.Kill()
			if inst.Info().Kind != kind {
				t.Errorf("started %+v, want a %s", inst.Info(), kind)
			}
			if b, _ := os.ReadFile(marker); string(b) != "ran\n" {
				t.Errorf("marker %q, want one run", b)
			}
		})
	}
}

// A supervisor does not start (nor keep retrying) a mismatched binary.
func TestSupervisorChecksumMismatch(t *testing.T) {
	path, marker := witnessPlugin(t)
	spec := allocSpec()
	spec.Path, spec.SHA256 = path, strings.Repeat("f", 64)
	s := NewSupervisor(spec, Options{}, nil)
	err := s.Start(context.Background())
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("Start = %v, want a *ChecksumError", err)
	}
	s.Stop()
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused binary ran (marker %s: %v)", marker, err)
	}
}

// Why we verify in our runner (see verifyChecksum): go-plugin checks the
// placeholder command's empty Path when a RunnerFunc is used, so with
// SecureConfig every start would fail. If this test fails, go-plugin has
// changed and SecureConfig may be usable.
func TestGoPluginSecureConfigWithRunnerFunc(t *testing.T) {
	sum, err := FileSHA256(testPlugin)
	if err != nil {
		t.Fatal(err)
	}
	want, err := hex.DecodeString(sum)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := lookupKind(base.KindAllocator)
	ran := false
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: k.handshake,
		Plugins:         k.plugins,
		RunnerFunc: func(l hclog.Logger, cmd *exec.Cmd, dir string) (runner.Runner, error) {
			ran = true
			return runnerConfig{path: testPlugin}.runnerFunc(func(*procRunner) {})(l, cmd, dir)
		},
		SecureConfig:     &plugin.SecureConfig{Checksum: want, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	})
	defer client.Kill()
	_, err = client.Client()
	if err == nil || !strings.Contains(err.Error(), "error verifying checksum: open : no such file or directory") || ran {
		t.Fatalf("go-plugin with RunnerFunc and a correct SecureConfig: %v (runner called: %v); "+
			"expected it to hash the empty placeholder path and fail", err, ran)
	}
}
