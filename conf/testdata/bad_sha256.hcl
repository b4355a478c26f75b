plugin "drf" {
  path   = "/opt/corral/drf"
  sha256 = "abc123"
}
