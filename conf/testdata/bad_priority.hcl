master {
  role "eng" { priority = 1.5 }
}
