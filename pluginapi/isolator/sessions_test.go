package isolator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/corral-project/corral/pluginapi/base"
	"github.com/corral-project/corral/pluginapi/isolator"
	"github.com/corral-project/corral/sdk/resources"
)

// sessions is a minimal real isolator: a container is the session led by
// its first process, measured through /proc and ended with SIGKILL. It
// shows that the contract suite accepts a correct plugin.
type sessions struct {
	mu   sync.Mutex
	pids map[string]int // 0 until Isolate
}

func newSessions() *sessions { return &sessions{pids: map[string]int{}} }

func (s *sessions) PluginInfo(context.Context) (*base.Info, error) {
	return &base.Info{Kind: base.KindIsolator, Name: "sessions", Version: "0.0.1", APIVersions: isolator.APIVersions}, nil
}
func (s *sessions) ConfigSchema(context.Context) (*base.Schema, error) { return &base.Schema{}, nil }
func (s *sessions) SetConfig(_ context.Context, cfg []byte, _ string) error {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return fmt.Errorf("sessions config: %w", err)
	}
	return nil
}

func (s *sessions) Recover(_ context.Context, _ string, known []isolator.ContainerState) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range known {
		s.pids[c.ContainerID] = c.Pid
	}
	return nil, nil
}

func (s *sessions) Prepare(_ context.Context, req isolator.PrepareRequest) (*isolator.LaunchSpec, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pids[req.ContainerID]; !ok {
		s.pids[req.ContainerID] = 0
	}
	return &isolator.LaunchSpec{NewSession: true}, nil
}

func (s *sessions) Isolate(_ context.Context, id string, pid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pids[id]; !ok {
		return fmt.Errorf("container %s was not prepared", id)
	}
	s.pids[id] = pid
	return nil
}

func (s *sessions) Update(context.Context, string, resources.Resources) error { return nil }

func (s *sessions) Cleanup(_ context.Context, id string) error {
	s.mu.Lock()
	pid, ok := s.pids[id]
	delete(s.pids, id)
	s.mu.Unlock()
	if ok && pid > 0 {
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("kill session %d: %w", pid, err)
		}
	}
	return nil
}

func (s *sessions) Usage(_ context.Context, ids []string) ([]isolator.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []isolator.Usage
	for _, id := range ids {
		u := isolator.Usage{ContainerID: id, Timestamp: time.Now()}
		if pid, ok := s.pids[id]; ok {
			u.Found = true
			u.Processes = sessionSize(pid)
		}
		out = append(out, u)
	}
	return out, nil
}

func (s *sessions) Watch(ctx context.Context) (<-chan isolator.Limitation, error) {
	ch := make(chan isolator.Limitation)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}

// sessionSize counts live processes whose session ID is sid.
func sessionSize(sid int) int {
	if sid <= 0 {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp session.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 3 && f[0] != "Z" && f[3] == strconv.Itoa(sid) {
			n++
		}
	}
	return n
}
