package isolator

import (
	"fmt"
	"time"

	isolatorpb "github.com/corral-project/corral/pluginapi/isolator/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// LaunchSpecToProto converts a launch spec to wire form. The executor
// package uses it too, since its ContainerService returns the same message.
func LaunchSpecToProto(s *LaunchSpec) *isolatorpb.LaunchSpec {
	if s == nil {
		return &isolatorpb.LaunchSpec{}
	}
	p := &isolatorpb.LaunchSpec{
		Environment: s.Environment,
		CgroupProcs: s.CgroupProcs,
		NewSession:  s.NewSession,
		Wrapper:     s.Wrapper,
		SkipIsolate: s.SkipIsolate,
	}
	for _, r := range s.Rlimits {
		p.Rlimits = append(p.Rlimits, &isolatorpb.Rlimit{Name: r.Name, Soft: r.Soft, Hard: r.Hard})
	}
	return p
}

// LaunchSpecFromProto converts a wire launch spec; nil gives an empty spec.
func LaunchSpecFromProto(p *isolatorpb.LaunchSpec) *LaunchSpec {
	s := &LaunchSpec{
		Environment: p.GetEnvironment(),
		CgroupProcs: p.GetCgroupProcs(),
		NewSession:  p.GetNewSession(),
		Wrapper:     p.GetWrapper(),
		SkipIsolate: p.GetSkipIsolate(),
	}
	for _, r := range p.GetRlimits() {
		s.Rlimits = append(s.Rlimits, Rlimit{Name: r.GetName(), Soft: r.GetSoft(), Hard: r.GetHard()})
	}
	return s
}

func containerStatesToProto(in []ContainerState) []*isolatorpb.ContainerState {
	out := make([]*isolatorpb.ContainerState, 0, len(in))
	for _, c := range in {
		out = append(out, &isolatorpb.ContainerState{
			ContainerId: c.ContainerID,
			Pid:         int32(c.Pid),
			Resources:   c.Resources.ToProto(),
		})
	}
	return out
}

func containerStatesFromProto(in []*isolatorpb.ContainerState) ([]ContainerState, error) {
	out := make([]ContainerState, 0, len(in))
	for _, p := range in {
		res, err := resources.FromProto(p.GetResources())
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", p.GetContainerId(), err)
		}
		out = append(out, ContainerState{ContainerID: p.GetContainerId(), Pid: int(p.GetPid()), Resources: res})
	}
	return out, nil
}

func usageToProto(u *Usage) *isolatorpb.ContainerUsage {
	p := &isolatorpb.ContainerUsage{
		ContainerId:      u.ContainerID,
		CpuUserSeconds:   u.CPUUserSeconds,
		CpuSystemSeconds: u.CPUSystemSeconds,
		MemRssBytes:      u.MemRSSBytes,
		Processes:        uint32(max(u.Processes, 0)),
		Found:            u.Found,

		MemUsageBytes:       u.MemUsageBytes,
		MemPeakBytes:        u.MemPeakBytes,
		MemLimitBytes:       u.MemLimitBytes,
		CpuPeriods:          u.CPUPeriods,
		CpuThrottledPeriods: u.CPUThrottledPeriods,
		CpuThrottledSeconds: u.CPUThrottledSeconds,
		PidsLimit:           u.PidsLimit,
		OomKills:            u.OOMKills,
	}
	if !u.Timestamp.IsZero() {
		p.TimestampUnixMs = u.Timestamp.UnixMilli()
	}
	return p
}

func usageFromProto(p *isolatorpb.ContainerUsage) Usage {
	u := Usage{
		ContainerID:      p.GetContainerId(),
		Found:            p.GetFound(),
		CPUUserSeconds:   p.GetCpuUserSeconds(),
		CPUSystemSeconds: p.GetCpuSystemSeconds(),
		MemRSSBytes:      p.GetMemRssBytes(),
		Processes:        int(p.GetProcesses()),

		MemUsageBytes:       p.GetMemUsageBytes(),
		MemPeakBytes:        p.GetMemPeakBytes(),
		MemLimitBytes:       p.GetMemLimitBytes(),
		CPUPeriods:          p.GetCpuPeriods(),
		CPUThrottledPeriods: p.GetCpuThrottledPeriods(),
		CPUThrottledSeconds: p.GetCpuThrottledSeconds(),
		PidsLimit:           p.GetPidsLimit(),
		OOMKills:            p.GetOomKills(),
	}
	if ms := p.GetTimestampUnixMs(); ms != 0 {
		u.Timestamp = time.UnixMilli(ms)
	}
	return u
}
