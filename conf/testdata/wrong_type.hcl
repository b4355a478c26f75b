master {
  max_message_bytes = "lots"
}
