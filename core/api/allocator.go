package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/acl"
)

// AllocatorSwap is the body of POST /api/v1/allocator.
type AllocatorSwap struct {
	Name string `json:"name"`
	// Config is the plugin's config in HCL ("" uses its plugin block's).
	Config string `json:"config"`
	// Shadow is the number of cycles the candidate shadows the active
	// allocator before the cut-over.
	Shadow int `json:"shadow"`
	// Promote is "auto" (the default) or "manual".
	Promote string `json:"promote"`
	// Wait makes the request return once the swap is decided: the new
	// plugin ran its first cycle, or the swap was rolled back or aborted.
	Wait bool `json:"wait"`
}

// SwapResult answers POST /api/v1/allocator: the slot's state and, when
// the request waited, the history record that decided the swap.
type SwapResult struct {
	Outcome *master.SwapRecord     `json:"outcome,omitempty"`
	Status  master.AllocatorStatus `json:"status"`
}

const maxSwapBody = 1 << 20

func allocatorRoutes(mux *http.ServeMux, m *master.Master) {
	mux.HandleFunc("GET /api/v1/allocator", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, m.AllocatorStatus()) })
	mux.HandleFunc("GET /api/v1/allocator/plugins", func(w http.ResponseWriter, r *http.Request) {
		list, err := m.AllocatorPlugins(r.Context())
		if err != nil {
			writeMasterError(w, err)
			return
		}
		writeJSON(w, list)
	})
	mux.HandleFunc("POST /api/v1/allocator", func(w http.ResponseWriter, r *http.Request) {
		req, wait, err := decodeSwap(w, r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if !allow(w, r, m, acl.UpdateAllocator, req.Choice.Name) {
			return
		}
		swap, err := m.SetAllocator(r.Context(), req)
		if err != nil {
			writeMasterError(w, err)
			return
		}
		if !wait {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(SwapResult{Status: m.AllocatorStatus()})
			return
		}
		select {
		case <-swap.Done():
		case <-r.Context().Done():
			return
		}
		out := swap.Outcome()
		writeJSON(w, SwapResult{Outcome: &out, Status: m.AllocatorStatus()})
	})
	mux.HandleFunc("POST /api/v1/allocator/promote", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, m, acl.UpdateAllocator, candidateName(m)) {
			return
		}
		if err := m.PromoteAllocator(); err != nil {
			writeMasterError(w, err)
			return
		}
		writeJSON(w, m.AllocatorStatus())
	})
	mux.HandleFunc("POST /api/v1/allocator/abort", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, m, acl.UpdateAllocator, candidateName(m)) {
			return
		}
		if err := m.AbortAllocator(); err != nil {
			writeMasterError(w, err)
			return
		}
		writeJSON(w, m.AllocatorStatus())
	})
}

func decodeSwap(w http.ResponseWriter, r *http.Request) (master.SwapRequest, bool, error) {
	var b AllocatorSwap
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSwapBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return master.SwapRequest{}, false, describeJSONError(err, "name, config, shadow, promote, wait")
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return master.SwapRequest{}, false, errors.New("request body: want one JSON object, found more data after it")
	}
	req := master.SwapRequest{Choice: master.AllocatorChoice{Name: b.Name, Config: b.Config}, Shadow: b.Shadow, Source: "api"}
	switch b.Promote {
	case "", "auto":
	case "manual":
		req.Manual = true
	default:
		return req, false, fmt.Errorf("promote: want \"auto\" or \"manual\", got %q", b.Promote)
	}
	return req, b.Wait, nil
}

// writeMasterError maps the master's typed errors to status codes.
// candidateName names the allocator a promote or abort acts on ("" when
// there is none; the call itself then reports it).
func candidateName(m *master.Master) string {
	if c := m.AllocatorStatus().Candidate; c != nil {
		return c.Name
	}
	return ""
}

func writeMasterError(w http.ResponseWriter, err error) {
	if master.IsDenied(err) {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	var verr *master.ValidationError
	var cerr *master.ConflictError
	var serr *master.SwapError
	switch {
	case errors.As(err, &verr):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &cerr):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, &serr):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
