package scheduler

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/hashicorp/go-hclog"

	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
)

// CapabilityGPUResources in FrameworkInfo.Capabilities tells the allocator
// the framework can use gpus. Without it, agents that have gpus are not
// offered to the framework at all, so GPU machines stay free for those that
// need them (Mesos' GPU_RESOURCES).
const CapabilityGPUResources = "GPU_RESOURCES"

// TaskShape is a number of identical tasks a framework still wants to
// launch: Resources is what one task needs, in the form TakeScalars takes
// ({"cpus": 1, "mem": 4096}).
type TaskShape struct {
	Resources map[string]float64
	Count     int
}

// shapesToProto validates shapes and converts them for a RequestCall.
// Shapes with Count 0 are dropped, so a framework can declare its pending
// count as it goes and the last declaration (0 left) withdraws the demand.
func shapesToProto(shapes []TaskShape) ([]*corralpb.TaskShape, error) {
	out := make([]*corralpb.TaskShape, 0, len(shapes))
	for i, s := range shapes {
		if s.Count < 0 || uint64(s.Count) > math.MaxUint32 {
			return nil, fmt.Errorf("shape %d: count %d is out of range", i, s.Count)
		}
		if s.Count == 0 {
			continue
		}
		names := make([]string, 0, len(s.Resources))
		for n := range s.Resources {
			names = append(names, n)
		}
		sort.Strings(names)
		var r resources.Resources
		for _, n := range names {
			if err := resources.ValidateScalar(n, s.Resources[n]); err != nil {
				return nil, fmt.Errorf("shape %d: %w", i, err)
			}
			r = r.Add(resources.NewScalar(n, s.Resources[n]))
		}
		if r.IsEmpty() {
			return nil, fmt.Errorf("shape %d asks for no resources", i)
		}
		out = append(out, &corralpb.TaskShape{Resources: r.ToProto(), Count: uint32(s.Count)})
	}
	return out, nil
}

// InverseOfferHandler is implemented by schedulers that want revocation
// notices. An inverse offer says the allocator took a running task's
// resources back (priority preemption, or a task past the operator's
// revoke_after while other roles starve). The framework may checkpoint,
// kill the task itself and relaunch it elsewhere; when GraceSeconds have
// passed the master kills it, and the task ends with an Update carrying
// REASON_PREEMPTED. Nothing needs to be answered.
//
// Schedulers without this method get a warning in the log per notice.
type InverseOfferHandler interface {
	InverseOffers(ctx context.Context, d Driver, offers []*corralpb.InverseOffer)
}

func logInverseOffers(log hclog.Logger, offers []*corralpb.InverseOffer) {
	for _, io := range offers {
		log.Warn("task revoked by the allocator; the master kills it after the grace period",
			"task_id", io.GetTaskId(), "agent_id", io.GetAgentId(), "reason", io.GetReason(),
			"grace_seconds", io.GetGraceSeconds())
	}
}
