# corral master: `corral master -config master.hcl`.
# Every setting shown here is at its default, except the example roles;
# delete what you do not change.

log_level  = "info"           # trace | debug | info | warn | error
log_json   = false            # JSON log lines instead of text
plugin_dir = "./bin/plugins"  # where plugin binaries are looked up by name

master {
  # One port serves gRPC (scheduler and agent APIs) and HTTP (operator API).
  address  = "127.0.0.1:5050"
  work_dir = "/tmp/corral/master"

  # The allocator plugin is asked for offers once per interval (and on events).
  allocation_interval = "1s"
  allocator           = "drf"
  allocator_timeout   = "5s"    # deadline of one Allocate call
  allocator_init_timeout = "1m" # deadline of Init: the whole cluster in one snapshot (after a failover or a plugin restart)

  offer_timeout            = "1m"    # "0" = offers never expire
  heartbeat_interval       = "15s"   # heartbeats to schedulers
  agent_reregister_timeout = "75s"   # a disconnected agent's tasks become LOST after this
  max_message_bytes        = 1048576 # largest framework message

  # Revocation of long tasks: when a role starves, the allocator may take
  # back resources from tasks that have run longer than revoke_after (never
  # below a role's quota guarantee). The framework gets a revocation notice
  # (an inverse offer) and the task is killed revoke_grace later.
  revoke_after = "0"    # "0" = never; for example "2h"
  revoke_grace = "30s"
  # Scheduler subscriptions (streams and standbys) one authenticated principal may hold
  # at once, on the gRPC and Mesos APIs together; 0: no cap.
  max_subscriptions_per_principal = 100

  # Roles share the cluster in proportion to their weights (default 1).
  # Names are /-separated paths: "eng/ml" is a child of "eng", and a
  # parent's share counts its whole subtree. Roles not listed here get
  # weight 1 when a framework first uses them; `corral role set` changes
  # any of this at run time (kept across master restarts).
  role "analytics" { weight = 2 }
  role "batch" { weight = 1 }

  role "eng/ml" {
    weight = 2
    # Priority tiers (the priority allocator): higher tiers are offered
    # first and may preempt lower ones. Default 0.
    priority = 10
    # Quota (the quota allocator), scalars only. The guarantee is held for
    # the role while it has demand; the limit caps offers plus running
    # tasks. The guarantee may not exceed the limit; "*" has no quota.
    quota {
      guarantee = "cpus:8;mem:16384"
      limit     = "cpus:32"
    }
  }
}

# Settings for a plugin named in this file. Without `path`, the binary is
# <plugin_dir>/drf or else <plugin_dir>/corral-allocator-drf.
plugin "drf" {
  args = []
  # Refuse to start the binary unless its sha256 matches (64 hex digits;
  # `corral allocator list` prints the sums).
  # sha256 = "..."
  # Decoded against the plugin's own schema when it starts.
  # config {
  #   ...
  # }
}
