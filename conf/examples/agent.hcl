# corral agent: `corral agent -config agent.hcl`.

log_level  = "info"
plugin_dir = "./bin/plugins"

agent {
  master   = "127.0.0.1:5050"  # the master's address
  address  = "127.0.0.1:5051"  # this agent's HTTP API (sandbox files)
  work_dir = "/tmp/corral/agent"
  hostname = ""                # "" = os.Hostname()

  # Overrides detected resources by name; "" keeps what was detected.
  resources = "cpus:2;mem:1024;ports:[31000-32000]"

  # Free-form attributes frameworks can match on.
  attributes = { rack = "r1" }

  isolator = "process"   # isolator plugin: process, or cgroups for enforced limits (root)
  # More isolators tasks may ask for with their container type; all are
  # advertised in the "isolators" attribute.
  # isolators = ["cgroups"]
  executor = "command"   # executor plugin

  executor_shutdown_grace = "5s"   # SIGTERM, then SIGKILL after this
  status_update_retry     = "10s"  # first retry; doubles up to 10m until acknowledged
  on_shutdown             = "keep" # keep: tasks outlive a stopped agent (reattached on restart); kill: kill them
  gc_delay                = "168h" # finished sandboxes go this long after their task ended ...
  disk_watch_interval     = "1m"   # ... sooner as the disk fills (checked this often):
  gc_disk_headroom        = 0.1    # max age = gc_delay * max(0, 1 - headroom - disk usage)
  # allow_root_tasks      = false  # run tasks as uid 0? default: yes without an acl block, no with one
  # credential_file       = "/etc/corral/agent-credential.json"  # {"principal": ..., "secret": ...} for register_agents
}
