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
	tmp, err := os.CreateTemp(filepath.Dir(path), ".agent_id-*")
	if err != nil {
		return fmt.Errorf("store agent ID: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("store agent ID: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("store agent ID: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store agent ID: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("store agent ID: %w", err)
	}
	return nil
}
