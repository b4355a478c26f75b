package command

import (
	"os"
	"path/filepath"

	"github.com/corral-project/corral/sdk/executor/shim"
)

// MaybeRunShim runs the task shim and never returns if os.Args[1] is
// shim.Arg; otherwise it returns at once. The executor's main, and the
// TestMain of any test that launches tasks with the executor's own binary
// as the shim, call it first.
func MaybeRunShim() { shim.MaybeRun() }

// ShimBeside returns the dedicated corral-shim (shim.BinaryName, the C
// shim) in dir when it is there: a fraction of the executor binary's
// memory per task and of its start-up CPU. Empty if it is not.
func ShimBeside(dir string) string {
	p := filepath.Join(dir, shim.BinaryName)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return ""
}
