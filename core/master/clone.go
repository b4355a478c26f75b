package master

import (
	"google.golang.org/protobuf/proto"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Messages are cloned at the boundary so that the master's books never
// alias a caller's request.

func cloneFramework(f *corralpb.FrameworkInfo) *corralpb.FrameworkInfo {
	return proto.Clone(f).(*corralpb.FrameworkInfo)
}

func cloneTask(t *corralpb.TaskInfo) *corralpb.TaskInfo { return proto.Clone(t).(*corralpb.TaskInfo) }

func cloneStatus(s *corralpb.TaskStatus) *corralpb.TaskStatus {
	return proto.Clone(s).(*corralpb.TaskStatus)
}
