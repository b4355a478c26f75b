# corral master: `corral master -config master.hcl`.
# Every setting shown here is at its default; delete what you do not change.

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

  offer_timeout            = "1m"    # "0" = offers never expire
  heartbeat_interval       = "15s"   # heartbeats to schedulers
  agent_reregister_timeout = "75s"   # a disconnected agent's tasks become LOST after this
  max_message_bytes        = 1048576 # largest framework message

  # Roles share the cluster in proportion to their weights (default 1).
  role "analytics" { weight = 2 }
  role "batch" { weight = 1 }
}

# Settings for a plugin named in this file. Without `path`, the binary is
# <plugin_dir>/drf or else <plugin_dir>/corral-allocator-drf.
plugin "drf" {
  args = []
  # Decoded against the plugin's own schema when it starts.
  # config {
  #   ...
  # }
}
