master {
  role "analytics" { weight = 2 }
  role "analytics" { weight = 3 }
}
