// Package sandbox lays out task sandboxes under an agent's work dir and
// serves their stdout and stderr over HTTP, a chunk at a time, so that
// operators and frameworks can tail a task's output from anywhere.
package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// MaxRead is the most one request returns; clients page with offset.
const MaxRead = 1 << 20

// SizeHeader carries the file's full size so clients know how far to page.
const SizeHeader = "X-Corral-File-Size"

// Files a sandbox is created with and that the HTTP API serves.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// ValidateID rejects IDs that could leave the sandbox root when used as a
// path element.
func ValidateID(id string) error {
	switch {
	case id == "", id == ".", id == "..":
		return fmt.Errorf("invalid ID %q", id)
	case strings.ContainsAny(id, "/\\\x00"):
		return fmt.Errorf("invalid ID %q: contains a path separator or NUL", id)
	}
	return nil
}

// Dir is the sandbox of a task: <root>/<frameworkID>/<taskID>.
func Dir(root, frameworkID, taskID string) (string, error) {
	if err := ValidateID(frameworkID); err != nil {
		return "", fmt.Errorf("framework: %w", err)
	}
	if err := ValidateID(taskID); err != nil {
		return "", fmt.Errorf("task: %w", err)
	}
	return filepath.Join(root, frameworkID, taskID), nil
}

// Create makes a task's sandbox with empty stdout and stderr files. An
// existing sandbox keeps its files (the task may be relaunched after a
// restart, and old output is still worth reading).
func Create(root, frameworkID, taskID string) (string, error) {
	dir, err := Dir(root, frameworkID, taskID)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create sandbox: %w", err)
	}
	for _, name := range []string{Stdout, Stderr} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return "", fmt.Errorf("create sandbox %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return "", fmt.Errorf("create sandbox %s: %w", name, err)
		}
	}
	return dir, nil
}

// Handler serves GET <prefix>{framework}/{task}/{stdout|stderr}?offset=N.
type Handler struct {
	root   string
	logger hclog.Logger
}

// NewHandler serves sandboxes under root. Mount it with
// mux.Handle("GET /api/v1/sandbox/{framework}/{task}/{file}", h).
func NewHandler(root string, logger hclog.Logger) *Handler {
	return &Handler{root: root, logger: logger}
}

// Pattern is the ServeMux pattern Handler expects to be mounted at.
const Pattern = "GET /api/v1/sandbox/{framework}/{task}/{file}"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fw, task, file := r.PathValue("framework"), r.PathValue("task"), r.PathValue("file")
	// Any regular file at the top of the sandbox, as Mesos' /files/read
	// serves a sandbox; ValidateID keeps the name a single path element.
	if err := ValidateID(file); err != nil {
		http.Error(w, "file: "+err.Error(), http.StatusBadRequest)
		return
	}
	dir, err := Dir(h.root, fw, task)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var offset int64
	if s := r.URL.Query().Get("offset"); s != "" {
		offset, err = strconv.ParseInt(s, 10, 64)
		if err != nil || offset < 0 {
			http.Error(w, fmt.Sprintf("offset %q: want a non-negative integer", s), http.StatusBadRequest)
			return
		}
	}
	// length bounds the answer as in Mesos' /files/read (at most MaxRead);
	// length=0 answers only the size, for a client that tails from the end.
	length := int64(MaxRead)
	if s := r.URL.Query().Get("length"); s != "" {
		length, err = strconv.ParseInt(s, 10, 64)
		if err != nil || length < 0 {
			http.Error(w, fmt.Sprintf("length %q: want a non-negative integer", s), http.StatusBadRequest)
			return
		}
		length = min(length, MaxRead)
	}
	// O_NOFOLLOW: a task must not turn its stdout into a symlink to a file
	// only the agent may read.
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		http.Error(w, "not a regular file", http.StatusNotFound)
		return
	}
	if errors.Is(err, os.ErrNotExist) {
		http.Error(w, fmt.Sprintf("no sandbox for task %s of framework %s", task, fw), http.StatusNotFound)
		return
	}
	if err != nil {
		h.logger.Warn("open sandbox file", "framework_id", fw, "task_id", task, "file", file, "error", err)
		http.Error(w, "cannot open file", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.Error(w, "not a regular file", http.StatusNotFound)
		return
	}
	size := st.Size()
	if r.URL.Query().Get("download") != "" {
		// The whole file, as a download (the sandbox browser's link).
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", file))
		w.Header().Set(SizeHeader, strconv.FormatInt(size, 10))
		http.ServeContent(w, r, file, st.ModTime(), f)
		return
	}
	n := max(0, min(size-offset, length))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(SizeHeader, strconv.FormatInt(size, 10))
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if n == 0 {
		return
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, offset, n)); err != nil {
		h.logger.Debug("send sandbox file", "framework_id", fw, "task_id", task, "file", file, "error", err)
	}
}
