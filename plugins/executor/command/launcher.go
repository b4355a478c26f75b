package command

import (
	"os"
	"path/filepath"

	"github.com/corral-project/corral/plugins/executor/command/launch"
	"github.com/corral-project/corral/sdk/executor/shim"
)

// LauncherArg, as os.Args[1], turns the executor binary into the launcher
// stage (package launch), for installs without the corral-launcher binary.
const LauncherArg = launch.Arg

// LauncherName is the small launcher binary the executor uses when it sits
// beside the executor's own binary: it starts far faster than re-executing
// the executor, and every task pays for one start.
const LauncherName = "corral-launcher"

// MaybeRunLauncher runs the launcher (or the task shim) and never returns
// if os.Args[1] is LauncherArg (shim.Arg); otherwise it returns at once.
// The executor's main, and the TestMain of any test that launches tasks
// in-process, call it first.
func MaybeRunLauncher() {
	shim.MaybeRun()
	launch.MaybeRun()
}

// ShimBinary returns the binary to start as a task's shim: the dedicated
// corral-shim (shim.BinaryName) beside launcher when it is there, which
// keeps only a few hundred KiB per task and starts faster, else launcher
// itself (it runs the shim too, through MaybeRunLauncher). The arguments
// are the same either way: shim.Arg, then the task's argv.
func ShimBinary(launcher string) string {
	p := filepath.Join(filepath.Dir(launcher), shim.BinaryName)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return launcher
}
