# The DRF paper's example (Ghodsi et al., NSDI 2011, section 4): one agent
# of 9 CPUs and 18 GiB, frameworks of <1 CPU, 4 GiB> and <3 CPU, 1 GiB>
# tasks. The agent's resources come from `corral agent -resources`.
master {
  allocator           = "drf"
  allocation_interval = "100ms"
}
