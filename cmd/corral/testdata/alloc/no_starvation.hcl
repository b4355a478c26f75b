# The same cluster as starvation.hcl without hold-back.
master {
  allocator           = "drf"
  allocation_interval = "100ms"
}
