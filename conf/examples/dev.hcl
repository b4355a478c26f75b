# corral dev: one process runs a master and an agent on 127.0.0.1.
# `make run` uses the plugins built into ./bin/plugins.

log_level  = "debug"
plugin_dir = "./bin/plugins"

master {
  address             = "127.0.0.1:5050"
  work_dir            = "/tmp/corral-dev/master"
  allocation_interval = "500ms"   # quicker offers while developing
  allocator           = "drf"
}

agent {
  master   = "127.0.0.1:5050"
  address  = "127.0.0.1:5051"
  work_dir = "/tmp/corral-dev/agent"
  isolator = "process"
  executor = "command"
}
