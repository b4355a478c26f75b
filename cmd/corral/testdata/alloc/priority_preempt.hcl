# Priority tiers with preemption and a short grace period. The low role's
# guarantee covers one of its tasks, which must never be revoked.
master {
  allocator           = "priority"
  allocation_interval = "100ms"
  revoke_grace        = "3s"

  role "low" {
    priority = 0
    quota {
      guarantee = "cpus:1;mem:256"
    }
  }
  role "high" {
    priority = 10
  }
}

plugin "priority" {
  config {
    preemption = true
  }
}
