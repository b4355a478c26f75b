package master_test

import (
	"context"
	"testing"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/acl"
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// TestViewACLs: the view_* rules, each allowed and denied, as the
// operator's state shows them (SnapshotFor): agents by hostname,
// frameworks by principal, their tasks by principal, roles by name.
func TestViewACLs(t *testing.T) {
	acls := &acl.ACLs{Rules: map[acl.Action][]acl.Rule{
		acl.RegisterFrameworks: {{Principals: entity("analytics"), Objects: entity(acl.Any)}},
		acl.RunTasks:           {{Principals: entity("analytics"), Objects: entity(acl.Any)}},
		acl.RegisterAgents:     {{Principals: entity("agent"), Objects: entity(acl.Any)}},
		acl.ViewAgents:         {{Principals: entity("ops"), Objects: entity("host-a1")}},
		acl.ViewFrameworks:     {{Principals: entity("ops", "viewer"), Objects: entity("analytics")}},
		acl.ViewTasks:          {{Principals: entity("ops"), Objects: entity("analytics")}},
		acl.ViewRoles:          {{Principals: entity("ops"), Objects: entity("analytics")}},
	}}
	m, c := startACLMaster(t, acls, "analytics", "agent", "ops", "viewer")
	c["agent"].addAgent("a1", "cpus:4;mem:4096")
	f := c["analytics"].subscribeInfo(&corralpb.FrameworkInfo{Name: "report", Roles: []string{"analytics"}})
	offer := f.offers()[0]
	if _, err := f.client.Accept(context.Background(), &corralpb.AcceptRequest{Header: f.header, OfferIds: []string{offer.Id},
		Operations: launch(task("t1", "cpus:0.1;mem:16"))}); err != nil {
		t.Fatal(err)
	}

	count := func(st master.State) (agents, frameworks, tasks, roles int) {
		for _, fv := range st.Frameworks {
			tasks += len(fv.Tasks)
		}
		for _, r := range st.Roles {
			if r.Name == "analytics" {
				roles++
			}
		}
		return len(st.Agents), len(st.Frameworks), tasks, roles
	}
	for _, tc := range []struct {
		principal                        string
		agents, frameworks, tasks, roles int
	}{
		{"ops", 1, 1, 1, 1},    // every view allowed
		{"viewer", 0, 1, 0, 0}, // the framework, not its tasks; no agents or roles
		{"analytics", 0, 0, 0, 0},
		{"", 0, 0, 0, 0}, // anonymous: default deny
	} {
		a, fr, tk, r := count(m.SnapshotFor(tc.principal))
		if a != tc.agents || fr != tc.frameworks || tk != tc.tasks || r != tc.roles {
			t.Errorf("state as %q: %d agents, %d frameworks, %d tasks, %d analytics roles; want %d, %d, %d, %d",
				tc.principal, a, fr, tk, r, tc.agents, tc.frameworks, tc.tasks, tc.roles)
		}
	}
}
