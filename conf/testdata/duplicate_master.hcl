master {
  allocator = "drf"
}
master {
  allocator = "priority"
}
