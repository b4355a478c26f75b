package main

import (
	"strings"
	"testing"

	"github.com/corral-project/corral/core/master"
)

func TestWhyNothingFits(t *testing.T) {
	agents := []master.AgentView{
		{Hostname: "small", Connected: true, Total: "cpus:1;mem:1024", Used: "cpus:0.5;mem:512", Attributes: map[string]string{"isolators": "process"}},
		{Hostname: "big", Connected: true, Total: "cpus:8;mem:8192", Used: "cpus:7.5;mem:8000", Attributes: map[string]string{"isolators": "cgroups,process"}},
		{Hostname: "huge-but-draining", Connected: true, Total: "cpus:64;mem:65536", Drain: "draining"},
		{Hostname: "gone", Connected: false, Total: "cpus:64;mem:65536"},
	}
	for _, tc := range []struct {
		name      string
		o         execOptions
		agents    []master.AgentView
		never     bool
		wantInMsg string
	}{
		{"fits by total, busy now", execOptions{cpus: 2, mem: 256}, agents, false,
			"still waiting for cpus=2 mem=256 disk=0: the most free agent, small, has cpus:0.5;mem:512 free (2 usable agents; not counting 1 disconnected, 1 draining)"},
		{"never fits", execOptions{cpus: 16, mem: 64}, agents, true,
			"no agent can ever fit cpus=16 mem=64 disk=0: the largest, big, has cpus:8;mem:8192 in all"},
		{"isolator missing", execOptions{cpus: 4, mem: 64, container: "cgroups"}, agents[:1], false,
			"no usable agent registered; not counting 1 without isolator cgroups"},
		{"only the cgroups agent counts", execOptions{cpus: 4, mem: 64, container: "cgroups"}, agents, false, "the most free agent, big,"},
		{"no agents", execOptions{cpus: 1}, nil, false, "no usable agent registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := whyNothingFits(master.State{Agents: tc.agents}, &tc.o)
			if r.never != tc.never || !strings.Contains(r.msg, tc.wantInMsg) {
				t.Errorf("got never=%v %q; want never=%v and %q", r.never, r.msg, tc.never, tc.wantInMsg)
			}
		})
	}
}
