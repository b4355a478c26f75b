// Package detect finds the resources an agent offers: CPUs, memory and disk
// minus a reserve for the host itself, and a default port range. Operators
// override any of them by name, as with Mesos' --resources flag.
package detect

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/sdk/resources"
)

// DefaultPorts is the port range offered when the operator names none
// (Mesos' default).
var DefaultPorts = resources.RangeSet{{Begin: 31000, End: 32000}}

const (
	mib = 1 << 20
	// Reserves kept back for the host, as Mesos does: memory keeps
	// min(1 GiB, half), disk keeps min(5 GiB, half).
	memReserveMiB  = 1024
	diskReserveMiB = 5 * 1024
)

// Detect probes this machine and returns cpus, mem (MiB), disk (MiB, of the
// file system holding workDir) and ports.
func Detect(workDir string) (resources.Resources, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return resources.Resources{}, fmt.Errorf("detect memory: %w", err)
	}
	defer f.Close()
	memTotal, err := ParseMemTotalMiB(f)
	if err != nil {
		return resources.Resources{}, fmt.Errorf("detect memory: %w", err)
	}
	diskTotal, err := DiskTotalMiB(workDir)
	if err != nil {
		return resources.Resources{}, err
	}
	return Build(runtime.NumCPU(), memTotal, diskTotal), nil
}

// Build turns raw machine totals into the resources offered, after reserves.
func Build(cpus int, memTotalMiB, diskTotalMiB uint64) resources.Resources {
	return resources.NewScalar(resources.CPUs, float64(cpus)).
		Add(resources.NewScalar(resources.Mem, float64(MemAvailableMiB(memTotalMiB)))).
		Add(resources.NewScalar(resources.Disk, float64(DiskAvailableMiB(diskTotalMiB)))).
		Add(resources.NewRanges(resources.Ports, DefaultPorts))
}

// MemAvailableMiB is total minus min(1 GiB, total/2).
func MemAvailableMiB(totalMiB uint64) uint64 { return totalMiB - min(memReserveMiB, totalMiB/2) }

// DiskAvailableMiB is total minus min(5 GiB, total/2).
func DiskAvailableMiB(totalMiB uint64) uint64 { return totalMiB - min(diskReserveMiB, totalMiB/2) }

// ParseMemTotalMiB reads the MemTotal line of /proc/meminfo.
func ParseMemTotalMiB(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "MemTotal:" {
			continue
		}
		kb, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse MemTotal %q: %w", fields[1], err)
		}
		if len(fields) > 2 && fields[2] != "kB" {
			return 0, fmt.Errorf("parse MemTotal: unexpected unit %q", fields[2])
		}
		return kb / 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	return 0, fmt.Errorf("no MemTotal line in meminfo")
}

// DiskTotalMiB is the size of the file system holding dir.
func DiskTotalMiB(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Blocks * uint64(st.Bsize) / mib, nil
}

// Override replaces each resource of detected that overrides names (the
// whole value, not a sum) and adds the names detected lacks.
func Override(detected, overrides resources.Resources) resources.Resources {
	out := detected
	for _, r := range overrides.ToProto() {
		n := r.GetName()
		out = out.Subtract(resources.NewScalar(n, out.Scalar(n))).
			Subtract(resources.NewRanges(n, out.Ranges(n))).
			Subtract(resources.NewSet(n, out.Set(n)...))
	}
	return out.Add(overrides)
}
