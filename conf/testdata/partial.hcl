master {
  allocator = "quota"
}
