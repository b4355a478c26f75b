// Package bundle names what the runc isolator and its starter share: the
// files of a container's directory and the container's fixed paths. It
// imports nothing, so that the plugin does not link libcontainer's init
// and the starter does not link the plugin.
package bundle

// Files and directories under a container's directory.
const (
	SpecName      = "spec.json" // the OCI runtime spec, written at Prepare
	ContainerName = "container" // libcontainer's state, while the starter runs
)

// SandboxTarget is where the task's sandbox is mounted in its container.
const SandboxTarget = "/mnt/sandbox"
