# Plain DRF; the roles are created by the frameworks that use them and
# their weights changed at run time with `corral role set`.
master {
  allocator           = "drf"
  allocation_interval = "100ms"
}
