master {
  role "eng//ml" { weight = 1 }
}
