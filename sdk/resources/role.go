package resources

import (
	"fmt"
	"strings"
)

// ValidateRole reports why name is not a usable role name, or nil. Roles
// are hierarchical, as in Mesos: "/"-separated paths ("eng", "eng/ml")
// whose components are non-empty, are not "." or "..", do not start with
// "-" and contain no whitespace or backslash. "*" is the default role and
// has no children.
func ValidateRole(name string) error {
	if name == "*" {
		return nil
	}
	if name == "" {
		return fmt.Errorf("role name is empty")
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "":
			return fmt.Errorf("role %q: empty path component (leading, trailing or double slash)", name)
		case c == "." || c == "..":
			return fmt.Errorf("role %q: path component %q is not allowed", name, c)
		case c == "*":
			return fmt.Errorf("role %q: %q is only valid as the whole role name", name, c)
		case strings.HasPrefix(c, "-"):
			return fmt.Errorf("role %q: path component %q starts with '-'", name, c)
		case strings.ContainsAny(c, " \t\n\r\v\f\\"):
			return fmt.Errorf("role %q: path component %q contains whitespace or a backslash", name, c)
		}
	}
	return nil
}

// RoleParent returns the parent of a hierarchical role ("eng" for
// "eng/ml"), or "" for a top-level role.
func RoleParent(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// RoleAncestors returns name and every ancestor, nearest first:
// "a/b/c" gives ["a/b/c", "a/b", "a"].
func RoleAncestors(name string) []string {
	var out []string
	for r := name; r != ""; r = RoleParent(r) {
		out = append(out, r)
	}
	return out
}
