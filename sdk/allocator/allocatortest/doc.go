// Package allocatortest is the testkit for corral allocator policies: a
// simulator of the master's side of the allocator contract (Sim), a
// transcript runner (RunTranscripts) and property checks any policy can
// run (CheckProperties). It depends only on the public contract
// (pluginapi/allocator) and the SDK, so plugin authors outside the corral
// repository use it as the shipped plugins do:
//
//	func newPlugin(*testing.T) allocator.Allocator { return mine.NewPlugin() }
//
//	func TestTranscripts(t *testing.T) {
//		allocatortest.RunTranscripts(t, "testdata/*.txt", newPlugin, "{}")
//	}
//
//	func TestProperties(t *testing.T) {
//		allocatortest.CheckProperties(t, newPlugin, "{}")
//	}
//
// The same tests run against the real plugin binary with a newPlugin that
// starts it through pluginapi/plugintest.Start.
//
// # Transcripts
//
// A transcript is a text file of commands, each followed by a "----" line
// and its expected output up to the next blank line:
//
//	# Comments and blank lines before a command are kept on -rewrite.
//	agent add a1 cpus:4;mem:4096
//	----
//	ok
//
// Every file runs against a fresh plugin driven by a fresh Sim, so a file
// is a self-contained scenario. `go test -rewrite` replaces the expected
// output with the actual output; review the diff before committing it.
//
// Resources are written as sdk/resources parses them
// ("cpus:1;mem:4096;ports:[31000-31009]"), times are logical milliseconds,
// refuse durations are seconds (as in Mesos), and lists are
// comma-separated. Any command takes at=MS, which first moves the clock to
// MS (killing revoked tasks whose grace ran out; see advance). Commands
// that change the cluster print "ok"; every command prints one
// "error: ..." line when it is rejected.
//
// Cluster:
//
//	config {JSON}                   SetConfig with this config object
//	agent add ID RES [inactive]     register an agent
//	agent update ID RES [inactive]  new total / activity (inactive rescinds its offers)
//	agent remove ID                 its offers are rescinded, its tasks lost
//	framework add ID roles=R,R [suppressed=R,R] [capabilities=C,C] [min.ROLE=RES|RES] [inactive]
//	framework update ID ...         same options; replaces the framework's facts
//	framework activate ID
//	framework deactivate ID         its offers are rescinded, tasks keep running
//	framework remove ID             its offers are rescinded, its tasks killed
//	weight ROLE W                   set a role's weight, keeping the rest
//	role set ROLE [weight=W] [priority=P] [guarantee=RES] [limit=RES]
//	                                change the given settings; guarantee= clears
//	settings [revoke_after=MS] [revoke_grace=MS] [max_offers=N]
//	                                operator settings sent with every cycle
//
// Frameworks:
//
//	suppress FW [roles=R,R]         no roles: all of them; drops their demand
//	revive FW [roles=R,R]           also clears the framework's filters there
//	demand FW ROLE [SHAPE ...]      declare pending tasks, each SHAPE being
//	                                RESxCOUNT (cpus:1;mem:4096x3) or RES for
//	                                one task; no shape withdraws the demand
//	accept FW AGENT [use=RES] [refuse=S] [role=R]
//	                                take FW's offers on AGENT, launch one task
//	                                (generated ID) using RES, decline the rest;
//	                                without use=, decline everything
//	launch FW AGENT task=ID[,ID] use=RES [refuse=S] [role=R]
//	                                the same with named tasks, each using RES
//	decline FW AGENT [refuse=S]     refuse defaults to 5 s
//	finish FW TASK[,TASK]           the tasks end; their resources are recovered
//
// Allocation and time:
//
//	allocate [now=MS] [max=N] [revoke_after=MS] [shares]
//	advance MS                      move the clock forward by MS; prints now=
//	                                and the tasks killed on the way
//	reinit                          Init the plugin again from a snapshot
//
// allocate runs one cycle at now (default: the current clock) and prints,
// in order: "kill FW/TASK@AGENT reason" for revoked tasks killed when the
// clock moved, "offer FW/ROLE@AGENT RES" for every offer made (with
// "despite filter until=MS" when a decline filter covered it), or
// "no offers"; "invalid FW/ROLE@AGENT RES: why" for every proposal the
// master would drop; "revoke FW/TASK@AGENT reason" for every revocation
// the plugin proposed ("refused: why" when the master would refuse it);
// and with shares, the response's metrics sorted by name. max and
// revoke_after apply to this cycle only.
//
// Inspection:
//
//	ledger    outstanding offers, then what tasks hold per framework/role@agent
//	tasks     running tasks in guarantee order, with within-guarantee and
//	          pending revocations (revoked kill_at=MS)
//	filters   active decline filters
//	deltas    the deltas queued for the next cycle
//
// # What the Sim does like the master
//
// Proposals are validated one by one, in the plugin's order, against the
// live books: known and active agent, known and active framework, a role
// the framework subscribes to and has not suppressed, non-empty resources
// that are free on the agent after its tasks, outstanding offers and the
// cycle's earlier proposals (so the same resources are never offered
// twice), and no more than max_offers. Decline filters are the policy's
// job, as on the master: an offer they cover is made and flagged.
//
// Revocations are refused for unknown tasks, the wrong agent, and tasks
// within their guarantee. An accepted one kills the task (TaskRemoved,
// then Recovered) once revoke_grace (default 30 s) has passed, unless the
// framework finishes it first; proposing it again changes nothing.
//
// Task.WithinGuarantee is marked after every change to tasks or roles,
// with a TaskUpdated delta for each task whose flag changed:
//
//   - a task counts against the guarantee of its own role, or of its
//     nearest ancestor that has one; a task with no such role is never
//     within a guarantee;
//   - per guaranteed role, tasks in start order (StartedAt, then framework
//     ID, then task ID) are within while their cumulative scalars fit in
//     the guarantee: the first task that does not fit, and every later
//     one, is outside;
//   - a guarantee bounds only the scalars it names, as a limit does.
//
// Earlier tasks thus keep their protection when later ones start, and a
// finished task makes room for the next ones in order.
//
// # Property checks
//
// CheckProperties (or Properties.Check, to skip a check or name excluded
// resources) runs seeded random workloads through a Sim: SafetyCheck and
// LimitsCheck (never more than free, never the same resources twice,
// never to an inactive framework or a suppressed role, never against a
// filter, never a revocation inside a guarantee, never past a quota
// limit), and FairnessOneAgentCheck and FairnessDemandCheck (with equal
// weights and greedy frameworks, dominant shares converge within one
// task). RunSafety and RunFairness run one workload, for a policy's own
// tests; RunGreedy runs a greedy workload on any cluster.
package allocatortest
