package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// FileSHA256 returns the sha256 of the file at path as 64 lowercase hex
// digits, the form plugin blocks pin and `corral allocator list` prints.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("sha256 of %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("sha256 of %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ChecksumError is a plugin binary whose sha256 is not the one its plugin
// block pins. Nothing was started.
type ChecksumError struct {
	Kind, Name string // the plugin, for the message
	Path       string
	Expected   string // from the plugin block
	Actual     string // of the file at Path
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s plugin %q: checksum mismatch for %s: expected sha256 %s, actual %s",
		e.Kind, e.Name, e.Path, e.Expected, e.Actual)
}

// verifyChecksum checks the binary at path against the sum spec pins, if
// any.
//
// go-plugin's own check (ClientConfig.SecureConfig) cannot do this for us:
// it hashes the placeholder exec.Cmd's Path, and with a RunnerFunc (we use
// one, see runner.go) that placeholder is exec.Command(""), whose Path is
// "". Setting SecureConfig would therefore fail every start with "error
// verifying checksum: open : no such file or directory", and Cmd cannot be
// set alongside RunnerFunc (Client.Start requires exactly one of Cmd,
// Reattach, RunnerFunc). So our runner calls this right before exec, where
// go-plugin would have: the window between hashing and execve is the same
// as with SecureConfig, which is why, as go-plugin's docs say, the binary
// must not be writable by anyone who should not choose what runs.
func verifyChecksum(spec Spec, path string) error {
	if spec.SHA256 == "" {
		return nil
	}
	actual, err := FileSHA256(path)
	if err != nil {
		return fmt.Errorf("%s plugin %q: verifying checksum: %w", spec.Kind, spec.Name, err)
	}
	if expected := strings.ToLower(spec.SHA256); actual != expected {
		return &ChecksumError{Kind: spec.Kind, Name: spec.Name, Path: path, Expected: expected, Actual: actual}
	}
	return nil
}
