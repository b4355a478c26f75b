package main

import (
	"context"
	"io"
	"reflect"
	"testing"
)

// TestNormalizeArgs: single-dash long flags become pflag's double dash
// only where they name a flag of the command being run; values, shorthands
// and everything that belongs to a task's command line stay as typed.
func TestNormalizeArgs(t *testing.T) {
	root := newRootCmd(context.Background(), io.Discard, io.Discard)
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"daemon flags", []string{"dev", "-master", "127.0.0.1:0", "-work-dir", "/tmp/w"},
			[]string{"dev", "--master", "127.0.0.1:0", "--work-dir", "/tmp/w"}},
		{"value that looks like a flag stays", []string{"role", "set", "eng", "-weight", "-1"},
			[]string{"role", "set", "eng", "--weight", "-1"}},
		{"name=value", []string{"task", "show", "-master=h:1", "t1"}, []string{"task", "show", "--master=h:1", "t1"}},
		{"shorthand stays", []string{"task", "logs", "t1", "-f", "-stderr"}, []string{"task", "logs", "t1", "-f", "--stderr"}},
		{"help", []string{"exec", "-help"}, []string{"exec", "--help"}},
		{"not a flag of this command", []string{"status", "-weight", "2"}, []string{"status", "-weight", "2"}},
		{"after --", []string{"exec", "-cpus", "1", "--", "sh", "-c", "echo -name"},
			[]string{"exec", "--cpus", "1", "--", "sh", "-c", "echo -name"}},
		{"exec stops at the command", []string{"exec", "-q", "ls", "-name", "x"}, []string{"exec", "-q", "ls", "-name", "x"}},
		{"agent ops", []string{"agent", "drain", "a1", "-deadline", "10m"}, []string{"agent", "drain", "a1", "--deadline", "10m"}},
		{"agent daemon", []string{"agent", "-emulate", "3", "-resources", "cpus:1"},
			[]string{"agent", "--emulate", "3", "--resources", "cpus:1"}},
		{"nested", []string{"tls", "cert", "create", "-server", "-dns", "a,b"}, []string{"tls", "cert", "create", "--server", "--dns", "a,b"}},
		{"completion untouched", []string{"__complete", "task", "-mas"}, []string{"__complete", "task", "-mas"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizeArgs(root, tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("normalizeArgs(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
