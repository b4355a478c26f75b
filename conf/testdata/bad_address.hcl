agent {
  master = "localhost"
}
