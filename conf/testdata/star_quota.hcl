master {
  role "*" {
    quota { limit = "cpus:4" }
  }
}
