package resources

import (
	"slices"
	"testing"
)

func TestValidateRole(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"*", true}, {"eng", true}, {"eng/ml", true}, {"a/b/c", true}, {"team-1", true},
		{"", false}, {"/eng", false}, {"eng/", false}, {"eng//ml", false}, {".", false},
		{"eng/..", false}, {"-eng", false}, {"eng/-ml", false}, {"eng ml", false},
		{"eng\\ml", false}, {"eng/*", false},
	} {
		if err := ValidateRole(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateRole(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestRoleAncestors(t *testing.T) {
	if got := RoleAncestors("a/b/c"); !slices.Equal(got, []string{"a/b/c", "a/b", "a"}) {
		t.Errorf("RoleAncestors(a/b/c) = %v", got)
	}
	if got := RoleParent("a"); got != "" {
		t.Errorf("RoleParent(a) = %q", got)
	}
}
