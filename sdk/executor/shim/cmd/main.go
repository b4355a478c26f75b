// Command corral-shim-go is the Go implementation of the per-task shim
// alone (package shim documents it; package shimrun is all it links).
// The shim installed beside the plugins is the C corral-shim
// (../cshim); `make build` puts this one in bin/ as the baseline of `make
// bench-shim`, and the same code is the executor binary's built-in shim
// mode. Started as corral-shim-go __corral-shim ARGV...
package main

import (
	"syscall"

	"github.com/corral-project/corral/sdk/executor/shim/shimrun"
)

func main() {
	shimrun.MaybeRun()
	msg := "corral-shim-go is started by an executor (first argument " + shimrun.Arg + "), not by hand\n"
	_, _ = syscall.Write(2, []byte(msg))
	syscall.Exit(2)
}
