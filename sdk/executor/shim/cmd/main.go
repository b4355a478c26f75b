// Command corral-shim is the per-task shim alone (package shim documents
// it; package shimrun is all it links): one runs per task for as long as
// the task, so it is kept as small as a Go binary gets. The command
// executor starts it as corral-shim __corral-shim ARGV...
package main

import (
	"syscall"

	"github.com/corral-project/corral/sdk/executor/shim/shimrun"
)

func main() {
	shimrun.MaybeRun()
	msg := "corral-shim is started by an executor (first argument " + shimrun.Arg + "), not by hand\n"
	_, _ = syscall.Write(2, []byte(msg))
	syscall.Exit(2)
}
