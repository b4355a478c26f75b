master {
  revoke_after = "-1h"
  revoke_grace = "0s"
}
