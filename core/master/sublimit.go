package master

import (
	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Subscriptions per principal (Config.MaxSubscriptionsPerPrincipal): one
// authenticated principal may hold at most that many scheduler
// subscriptions at once, counting every framework's open stream and its
// hot standbys, on the gRPC and the Mesos scheduler APIs alike (both
// subscribe through Subscribe). A principal that reaches the cap is
// refused with CodeRateLimited (gRPC ResourceExhausted, Mesos 429) naming
// the principal and the cap; what it already holds is not touched. A
// failover re-subscription replaces its framework's stream and so counts
// nothing new. Anonymous callers (no certificate, no credentials) have no
// principal to count against; on a cluster that lets them subscribe,
// anyone may already do anything.

// checkSubscriptionLimitLocked refuses req if its principal already holds
// as many subscriptions as the cap allows.
func (m *Master) checkSubscriptionLimitLocked(req *corralpb.SubscribeRequest) error {
	limit, fi := m.cfg.MaxSubscriptionsPerPrincipal, req.GetFramework()
	principal := fi.GetPrincipal()
	if limit <= 0 || principal == "" {
		return nil
	}
	held := 0
	for id, f := range m.frameworks {
		if f.info.GetPrincipal() != principal {
			continue
		}
		replaced := id == fi.GetId() && !req.GetStandby()
		if f.sub != nil && !replaced {
			held++
		}
		held += len(f.standbys)
	}
	if held < limit {
		return nil
	}
	m.metrics.subscriptionsRefused.Inc()
	m.log.Warn("subscription refused: principal at its limit", "principal", principal, "subscriptions", held,
		"limit", limit, "framework_id", fi.GetId())
	return callErr(CodeRateLimited,
		"subscribe: principal %q already holds %d scheduler subscriptions, its limit (master.max_subscriptions_per_principal = %d); "+
			"close one (or tear down a framework) before subscribing another", principal, held, limit)
}
