master {
  address  = "127.0.0.1:5050"
  alocator = "drf"
}
