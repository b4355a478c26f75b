master {
  role "eng" {
    quota { guarantee = "cpus:1" }
    quota { limit = "cpus:2" }
  }
}
