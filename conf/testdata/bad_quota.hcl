master {
  role "eng" {
    quota {
      guarantee = "cpus:eight"
      limit     = "ports:[31000-32000]"
    }
  }
}
