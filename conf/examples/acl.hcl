# Identities and ACLs: put these blocks in the master's config file (with a tls
# block, so that principals come from client certificates). See the README's
# Security section.
#
# Who is calling: the common name of a client certificate (with a tls block), or the
# principal of HTTP basic credentials checked against a Mesos-style credentials file:
#   {"credentials": [{"principal": "analytics", "secret": "..."}]}
# credentials_file = "/etc/corral/credentials.json"

acl {
  # What no rule below allows is denied (true: allowed, as Mesos's "permissive").
  permissive = false

  # Per action, rules are checked in order; the first whose principals and objects
  # both match decides. ["ANY"] matches anything; an object list of ["NONE"] denies.
  register_frameworks {
    principals = ["analytics"]
    roles      = ["analytics", "batch/*"] # "batch/*": every role below batch
  }
  run_tasks {
    principals = ["ANY"]
    users      = ["nobody"] # the task's command user, else the framework's
  }
  kill_tasks {
    principals           = ["ops"]
    framework_principals = ["ANY"] # whose tasks: the owning framework's principal
  }
  teardown_frameworks {
    principals = ["ops"] # no object list: ["ANY"]
  }
  update_weights {
    principals = ["ops"]
  }
  update_quotas {
    principals = ["ops"]
  }
  update_allocator {
    principals = ["ops"]
    allocators = ["drf", "quota"]
  }
  drain_agents {
    principals = ["ops"]
    agents     = ["ANY"] # agent hostnames
  }
  register_agents {
    principals = ["agent"] # the agents' certificate names
  }
  # Reads of state are filtered by these, not refused.
  view_frameworks {
    principals = ["ANY"]
  }
  view_tasks {
    principals           = ["analytics"]
    framework_principals = ["analytics"]
  }
  view_tasks {
    principals = ["ops"]
  }
  # Agents filter their own state and monitor by these too; the master's
  # per-task usage endpoint reads an agent's monitor with the master's
  # certificate (after checking the caller's view_tasks).
  view_tasks {
    principals = ["master"]
  }
  view_agents {
    principals = ["ANY"]
  }
  view_roles {
    principals = ["ANY"]
  }
  access_sandboxes {
    principals           = ["analytics"]
    framework_principals = ["analytics"]
  }
  # Agents with this block check their sandbox endpoints too; the master's proxy
  # reaches them with the master's certificate (after checking the caller).
  access_sandboxes {
    principals = ["master"]
  }
  # corral task exec runs a command in a task's container: only ops, and the
  # master's proxy on their behalf.
  exec_tasks {
    principals           = ["ops"]
    framework_principals = ["ANY"]
  }
  exec_tasks {
    principals = ["master"]
  }
}
