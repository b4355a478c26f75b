package coord

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileStore is the standalone registry: one file, replaced atomically.
type FileStore struct{ Path string }

// Load reads the file; a missing file is an empty registry (nil).
func (s FileStore) Load(context.Context) ([]byte, error) {
	raw, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("master registry %s: %w", s.Path, err)
	}
	return raw, nil
}

// Store replaces the file atomically: a crash leaves either the old file or
// the new one, never a torn one.
func (s FileStore) Store(_ context.Context, data []byte) error {
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the registry directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".registry-*.tmp")
	if err != nil {
		return fmt.Errorf("creating a temporary registry file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.Path); err != nil {
		return fmt.Errorf("replacing %s: %w", s.Path, err)
	}
	// The rename is durable only once the directory entry is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (s FileStore) String() string { return s.Path }

// Standalone is the embedded default: one master, always the leader.
type Standalone struct {
	// Address is this master's address, reported as the leader.
	Address string
	// Store is the registry; FileStore under the master's work dir.
	Store Store
}

// Campaign returns at once: a standalone master always leads.
func (s *Standalone) Campaign(context.Context) (Term, error) {
	return standaloneTerm{}, nil
}

// Leader is this master.
func (s *Standalone) Leader(context.Context) (string, error) { return s.Address, nil }

// Registry is the file store.
func (s *Standalone) Registry() Store { return s.Store }

// Close has nothing to release.
func (s *Standalone) Close() error { return nil }

type standaloneTerm struct{}

func (standaloneTerm) Lost() <-chan struct{} { return nil } // never lost
func (standaloneTerm) Resign()               {}
