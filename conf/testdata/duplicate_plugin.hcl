plugin "drf" {
  args = ["-v"]
}

plugin "drf" {
  path = "/opt/drf"
}
