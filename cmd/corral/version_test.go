package main

import (
	"context"
	"strings"
	"testing"
)

func TestVersionSaysWhatItIs(t *testing.T) {
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("corral version: exit %d, %s", code, errb.String())
	}
	for _, want := range []string{"corral " + version, "commit ", "go       go1.", "plugins  allocator v2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("corral version lacks %q:\n%s", want, out.String())
		}
	}
}
