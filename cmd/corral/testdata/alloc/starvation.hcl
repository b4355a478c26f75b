# DRF with hold-back: a declared task shape that has fit nowhere for 3s
# makes the allocator hold the agent closest to fitting it.
master {
  allocator           = "drf"
  allocation_interval = "100ms"
}

plugin "drf" {
  config {
    starvation_timeout = "3s"
  }
}
