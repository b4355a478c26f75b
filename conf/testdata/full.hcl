log_level  = "debug"
log_json   = true
plugin_dir = "/opt/corral/plugins"

master {
  address                  = "0.0.0.0:6050"
  work_dir                 = "/var/lib/corral/master"
  allocation_interval      = "500ms"
  allocator                = "priority"
  allocator_timeout        = "2s"
  allocator_init_timeout   = "90s"
  offer_timeout            = "0"
  heartbeat_interval       = "10s"
  agent_reregister_timeout = "2m"
  max_message_bytes        = 4194304
  revoke_after             = "2h"
  revoke_grace             = "45s"
  max_subscriptions_per_principal = 20
  role "analytics" { weight = 2 }
  role "batch" { weight = 0.5 }
  role "eng/ml" {
    weight   = 3
    priority = 10
    quota {
      guarantee = "cpus:8;mem:16384"
      limit     = "cpus:32"
    }
  }
  role "eng/web" {
    priority = -1
    quota { limit = "gpus:0.5" }
  }
}

agent {
  master                  = "10.0.0.1:6050"
  address                 = "0.0.0.0:6051"
  work_dir                = "/var/lib/corral/agent"
  hostname                = "node-1"
  resources               = "cpus:4;mem:2048;ports:[31000-32000]"
  attributes              = { rack = "r1", zone = "z2" }
  isolator                = "cgroups"
  executor                = "custom"
  executor_shutdown_grace = "3s"
  status_update_retry     = "1s"
  executor_idle_timeout   = "90s"
  executor_reregister_timeout = "20s"
  on_shutdown             = "kill"
  gc_delay                = "48h"
  disk_watch_interval     = "30s"
  gc_disk_headroom        = 0.2
  allow_root_tasks        = false
}

plugin "priority" {
  path = "/opt/corral/priority"
  args = ["-fast"]
  sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
  config {
    levels = 3
  }
}

plugin "cgroups" {}
