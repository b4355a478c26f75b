# A highly available corral master: run three of these, one per machine
# (or three on one machine with different addresses), each next to a
# Consul agent that is a member of your Consul cluster:
#
#   corral master -config ha-master.hcl -master 10.0.0.1:5050
#   corral master -config ha-master.hcl -master 10.0.0.2:5050
#   corral master -config ha-master.hcl -master 10.0.0.3:5050
#
# They elect a leader through a Consul lock; the other two stand by with a
# warm allocator plugin, serve reads, and redirect everything else to the
# leader. Agents, schedulers and the CLI find the leader through Consul:
#
#   corral agent  -master consul://127.0.0.1:8500/corral
#   corral status -master consul://127.0.0.1:8500/corral
#
# For a try on one machine: `consul agent -dev` (make consul builds it),
# then the three masters with -master 127.0.0.1:5050, :5051, :5052 and
# different -work-dir.

log_level = "info"

consul {
  address = "127.0.0.1:8500" # the local Consul agent's HTTP API
  prefix  = "corral"         # KV prefix and service names: one per cluster
  # token = "..."            # ACL token with key_prefix "corral" write,
  #                          # session write and service "corral-" write
  # scheme = "https"         # and ca_file, cert_file, key_file,
  #                          # tls_server_name for a TLS Consul API

  # A master refreshes its own TTL check every check_ttl/4; killed with -9,
  # it loses the lock about check_ttl later (plus lock_delay), and a
  # standby takes over. A leader that cannot refresh steps down by itself
  # before Consul could expire it. Raise check_ttl on machines so loaded
  # that a refresh can take longer than check_ttl/4.
  check_ttl  = "1s"
  lock_delay = "100ms"
}

master {
  # Overridden by -master on each machine.
  address  = "127.0.0.1:5050"
  work_dir = "/var/lib/corral/master"

  allocator           = "drf"
  allocation_interval = "1s"

  # After a failover the new leader expects back every agent in the
  # registry (kept in Consul KV beside the leader lock); one that has not
  # re-registered this long after the failover is marked unreachable and
  # frameworks hear its tasks are LOST (they are adopted again if it
  # returns).
  agent_reregister_timeout = "10m"
}
