# ACLs modelled on Mesos's: rules per action, checked in order, first match decides.
acl {
  permissive = false

  register_frameworks {
    principals = ["analytics"]
    roles      = ["analytics", "batch/*"]
  }
  register_frameworks {
    principals = ["ops"]
    roles      = ["NONE"]
  }
  run_tasks {
    principals = ["ANY"]
    users      = ["nobody"]
  }
  kill_tasks {
    principals           = ["ops"]
    framework_principals = ["ANY"]
  }
  view_frameworks {
    principals = ["ANY"]
  }
  register_agents {
    principals = ["agent"]
  }
}
