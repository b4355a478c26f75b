// Command corral-runc-start is the runc isolator's starter (package start):
// the task shim execs it in place of a task's command, and libcontainer
// re-executes it as the container's init.
package main

import "github.com/corral-project/corral/plugins/isolator/runc/start"

func init() { start.MaybeInit() }

func main() { start.Main() }
