master {
  role "eng/ml" {
    quota {
      guarantee = "cpus:40;mem:16384"
      limit     = "cpus:32;mem:8192"
    }
  }
}
