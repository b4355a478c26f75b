agent {
  resources = "cpus:four;mem:2048"
}
