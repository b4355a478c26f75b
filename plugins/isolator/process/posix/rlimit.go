package posix

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Unlimited is RLIM_INFINITY.
const Unlimited uint64 = math.MaxUint64

// rlimitResources maps the rlimit names of the isolator contract to
// setrlimit(2) resources.
var rlimitResources = map[string]int{
	"nofile":  unix.RLIMIT_NOFILE,
	"nproc":   unix.RLIMIT_NPROC,
	"core":    unix.RLIMIT_CORE,
	"fsize":   unix.RLIMIT_FSIZE,
	"as":      unix.RLIMIT_AS,
	"cpu":     unix.RLIMIT_CPU,
	"stack":   unix.RLIMIT_STACK,
	"memlock": unix.RLIMIT_MEMLOCK,
}

// RlimitNames lists the supported rlimit names, sorted.
func RlimitNames() []string {
	names := make([]string, 0, len(rlimitResources))
	for n := range rlimitResources {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// RlimitResource returns the setrlimit(2) resource for a name.
func RlimitResource(name string) (int, error) {
	r, ok := rlimitResources[name]
	if !ok {
		return 0, fmt.Errorf("unknown rlimit %q (known: %s)", name, strings.Join(RlimitNames(), ", "))
	}
	return r, nil
}

// ParseRlimitValue parses "N" (soft and hard), "soft:hard" or "unlimited";
// either side of "soft:hard" may itself be "unlimited".
func ParseRlimitValue(value string) (soft, hard uint64, err error) {
	one := func(s string) (uint64, error) {
		s = strings.TrimSpace(s)
		if s == "unlimited" {
			return Unlimited, nil
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number or \"unlimited\"", s)
		}
		return v, nil
	}
	softStr, hardStr, pair := strings.Cut(value, ":")
	if soft, err = one(softStr); err != nil {
		return 0, 0, err
	}
	if !pair {
		return soft, soft, nil
	}
	if hard, err = one(hardStr); err != nil {
		return 0, 0, err
	}
	if soft > hard {
		return 0, 0, fmt.Errorf("soft limit %s exceeds hard limit %s", softStr, hardStr)
	}
	return soft, hard, nil
}
