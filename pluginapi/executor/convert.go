package executor

import (
	"time"

	executorpb "github.com/corral-project/corral/pluginapi/executor/proto"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

func launchRequestToProto(r *LaunchRequest, containerServiceID uint32) *executorpb.LaunchRequest {
	return &executorpb.LaunchRequest{
		ContainerId: r.ContainerID,
		TaskId:      r.TaskID,
		Command: &corralpb.CommandInfo{
			Shell:       r.Command.Shell,
			Value:       r.Command.Value,
			Arguments:   r.Command.Arguments,
			Environment: r.Command.Environment,
			User:        r.Command.User,
		},
		SandboxDir:         r.SandboxDir,
		StdoutPath:         r.StdoutPath,
		StderrPath:         r.StderrPath,
		ContainerServiceId: containerServiceID,
		Environment:        r.Environment,
	}
}

func launchRequestFromProto(p *executorpb.LaunchRequest) *LaunchRequest {
	cmd := p.GetCommand()
	return &LaunchRequest{
		ContainerID: p.GetContainerId(),
		TaskID:      p.GetTaskId(),
		Command: Command{
			Shell:       cmd.GetShell(),
			Value:       cmd.GetValue(),
			Arguments:   cmd.GetArguments(),
			Environment: cmd.GetEnvironment(),
			User:        cmd.GetUser(),
		},
		SandboxDir:  p.GetSandboxDir(),
		StdoutPath:  p.GetStdoutPath(),
		StderrPath:  p.GetStderrPath(),
		Environment: p.GetEnvironment(),
	}
}

func statsToProto(s *Stats) *executorpb.StatsResponse {
	p := &executorpb.StatsResponse{
		CpuUserSeconds:   s.CPUUserSeconds,
		CpuSystemSeconds: s.CPUSystemSeconds,
		MemRssBytes:      s.MemRSSBytes,
	}
	if !s.Timestamp.IsZero() {
		p.TimestampUnixMs = s.Timestamp.UnixMilli()
	}
	return p
}

func statsFromProto(p *executorpb.StatsResponse) *Stats {
	s := &Stats{
		CPUUserSeconds:   p.GetCpuUserSeconds(),
		CPUSystemSeconds: p.GetCpuSystemSeconds(),
		MemRSSBytes:      p.GetMemRssBytes(),
	}
	if ms := p.GetTimestampUnixMs(); ms != 0 {
		s.Timestamp = time.UnixMilli(ms)
	}
	return s
}
