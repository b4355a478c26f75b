package allocatortest

import (
	"fmt"
	"strings"

	"github.com/corral-project/corral/pluginapi/allocator"
	"github.com/corral-project/corral/sdk/resources"
)

// DescribeProposal renders an offer as transcripts print it:
// "framework/role@agent resources".
func DescribeProposal(p allocator.Proposal) string {
	return fmt.Sprintf("%s/%s@%s %s", p.FrameworkID, p.Role, p.AgentID, describeResources(p.Resources))
}

// DescribeRevocation renders a revocation as transcripts print it:
// "framework/task@agent reason".
func DescribeRevocation(r allocator.Revocation) string {
	return fmt.Sprintf("%s/%s@%s %s", r.FrameworkID, r.TaskID, r.AgentID, r.Reason)
}

// DescribeTask renders a task as the transcript command "tasks" prints it.
func DescribeTask(t allocator.Task) string {
	s := fmt.Sprintf("%s/%s@%s %s %s started=%d", t.FrameworkID, t.ID, t.AgentID, t.Role, describeResources(t.Resources), t.StartedAt)
	if t.WithinGuarantee {
		s += " within-guarantee"
	}
	return s
}

func describeResources(r resources.Resources) string {
	if r.IsEmpty() {
		return "nothing"
	}
	return r.String()
}

// DescribeDelta renders a delta on one line, as the transcript command
// "deltas" prints it.
func DescribeDelta(d allocator.Delta) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d at=%d %s", d.Version, d.At, d.Kind)
	switch d.Kind {
	case allocator.AgentAdded, allocator.AgentUpdated:
		fmt.Fprintf(&b, " %s %s", d.Agent.ID, describeResources(d.Agent.Total))
		if !d.Agent.Active {
			b.WriteString(" inactive")
		}
	case allocator.AgentRemoved:
		fmt.Fprintf(&b, " %s", d.AgentID)
	case allocator.FrameworkAdded, allocator.FrameworkUpdated:
		fmt.Fprintf(&b, " %s roles=%s", d.Framework.ID, strings.Join(d.Framework.Roles, ","))
		if len(d.Framework.SuppressedRoles) > 0 {
			fmt.Fprintf(&b, " suppressed=%s", strings.Join(d.Framework.SuppressedRoles, ","))
		}
		if len(d.Framework.Capabilities) > 0 {
			fmt.Fprintf(&b, " capabilities=%s", strings.Join(d.Framework.Capabilities, ","))
		}
		for _, r := range sortedKeys(d.Framework.MinAllocatable) {
			var alts []string
			for _, alt := range d.Framework.MinAllocatable[r] {
				alts = append(alts, alt.String())
			}
			fmt.Fprintf(&b, " min.%s=%s", r, strings.Join(alts, "|"))
		}
		if !d.Framework.Active {
			b.WriteString(" inactive")
		}
	case allocator.FrameworkRemoved:
		fmt.Fprintf(&b, " %s", d.FrameworkID)
	case allocator.RoleUpdated:
		b.WriteString(" " + describeRole(*d.Role))
	case allocator.Allocated, allocator.Recovered:
		a := d.Allocation
		fmt.Fprintf(&b, " %s/%s@%s %s", a.FrameworkID, a.Role, a.AgentID, describeResources(a.Resources))
		if d.RefuseSeconds > 0 {
			fmt.Fprintf(&b, " refuse=%g", d.RefuseSeconds)
		}
	case allocator.Suppressed, allocator.Revived:
		fmt.Fprintf(&b, " %s", d.FrameworkID)
		if len(d.Roles) > 0 {
			fmt.Fprintf(&b, " roles=%s", strings.Join(d.Roles, ","))
		}
	case allocator.TaskAdded, allocator.TaskUpdated:
		b.WriteString(" " + DescribeTask(*d.Task))
	case allocator.TaskRemoved:
		fmt.Fprintf(&b, " %s/%s", d.FrameworkID, d.TaskID)
	case allocator.DemandUpdated:
		fmt.Fprintf(&b, " %s/%s", d.Demand.FrameworkID, d.Demand.Role)
		if len(d.Demand.Shapes) == 0 {
			b.WriteString(" withdrawn")
		}
		for _, sh := range d.Demand.Shapes {
			fmt.Fprintf(&b, " %s", formatShape(sh))
		}
	}
	return b.String()
}

// describeRole renders a role's configuration in "role set" syntax.
func describeRole(r allocator.Role) string {
	s := r.Name
	if r.Weight != 0 {
		s += fmt.Sprintf(" weight=%g", r.Weight)
	}
	if r.Priority != 0 {
		s += fmt.Sprintf(" priority=%d", r.Priority)
	}
	if !r.Guarantee.IsEmpty() {
		s += " guarantee=" + r.Guarantee.String()
	}
	if !r.Limit.IsEmpty() {
		s += " limit=" + r.Limit.String()
	}
	return s
}

// formatShape renders a task shape as the demand command reads it.
func formatShape(sh allocator.TaskShape) string {
	return fmt.Sprintf("%sx%d", sh.Resources, sh.Count)
}
