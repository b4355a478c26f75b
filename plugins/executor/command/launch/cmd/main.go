// Command corral-launcher is the command executor's launcher stage alone
// (package launch): a small binary, so that starting one per task is cheap.
package main

import (
	"fmt"
	"os"

	"github.com/corral-project/corral/plugins/executor/command/launch"
	"github.com/corral-project/corral/sdk/executor/shim"
)

func main() {
	// Started twice per task: once as the task's long-lived shim (its
	// parent), which starts it again as the launcher stage.
	shim.MaybeRun()
	launch.MaybeRun()
	fmt.Fprintf(os.Stderr, "corral-launcher is started by the command executor (first argument %s), not by hand\n", launch.Arg)
	os.Exit(2)
}
