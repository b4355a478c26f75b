package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// loadID reads the ID a previous run was given, "" if there is none.
func loadID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read agent ID from %s: %w", path, err)
	}
	id := strings.TrimSpace(string(b))
	if err := checkStoredID(path, id); err != nil {
		return "", err
	}
	return id, nil
}

// storeID writes the ID atomically so a crash never leaves half an ID.
func storeID(path, id string) error {
	if err := writeAtomic(path, id+"\n", 0o644); err != nil {
		return fmt.Errorf("store agent ID: %w", err)
	}
	return nil
}

// loadSecret reads the secret bound to the agent's ID, "" if there is none
// (an agent registered before secrets, or a first start).
func loadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read agent secret from %s: %w", path, err)
	}
	secret := strings.TrimSpace(string(b))
	if len(secret) > 256 || strings.ContainsFunc(secret, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", fmt.Errorf("agent secret file %s is corrupt (want printable ASCII, at most 256 bytes); "+
			"remove it and the agent_id file beside it to register as a new agent", path)
	}
	return secret, nil
}

// storeSecret writes the secret owner-only, atomically.
func storeSecret(path, secret string) error {
	if err := writeAtomic(path, secret+"\n", 0o600); err != nil {
		return fmt.Errorf("store agent secret: %w", err)
	}
	return nil
}

// writeAtomic replaces path with content, synced, so that a crash leaves
// the old file or the new one, never half of either.
func writeAtomic(path, content string, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
