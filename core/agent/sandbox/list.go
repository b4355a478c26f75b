package sandbox

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sort"
	"time"
)

// ListPattern is the ServeMux pattern of the sandbox listing.
const ListPattern = "GET /api/v1/sandbox/{framework}/{task}"

// Entry is one file of a sandbox listing.
type Entry struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Dir     bool      `json:"dir,omitempty"`
}

// ListHandler lists the top level of a task's sandbox as JSON, sorted by
// name: what the operator's sandbox browser shows.
func (h *Handler) ListHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw, task := r.PathValue("framework"), r.PathValue("task")
		dir, err := Dir(h.root, fw, task)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		des, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			http.Error(w, "no sandbox for task "+task+" of framework "+fw, http.StatusNotFound)
			return
		}
		if err != nil {
			h.logger.Warn("list sandbox", "framework_id", fw, "task_id", task, "error", err)
			http.Error(w, "cannot list the sandbox", http.StatusInternalServerError)
			return
		}
		out := []Entry{}
		for _, de := range des {
			info, err := de.Info()
			if err != nil || info.Mode()&os.ModeSymlink != 0 {
				continue // gone meanwhile, or a link the file handler would refuse
			}
			out = append(out, Entry{Name: de.Name(), Size: info.Size(), ModTime: info.ModTime(), Dir: info.IsDir()})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}
