# A flooding role capped by a limit, and a role with a guarantee that must
# be met while the flood churns (quota allocator). The flood's weight makes
# plain DRF favour it: only the guarantee gets the gold role its CPUs.
master {
  allocator           = "quota"
  allocation_interval = "100ms"

  role "flood" {
    weight = 4
    quota {
      limit = "cpus:3"
    }
  }
  role "gold" {
    quota {
      guarantee = "cpus:2;mem:1024"
      limit     = "cpus:3;mem:2048"
    }
  }
}
