master {
  role "batch" { weight = 0 }
}
