log_level = "debug"

master {
  allocation_interval = "1x"
}
