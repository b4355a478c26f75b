package main

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

func TestParseAllocatorArgs(t *testing.T) {
	files := map[string]string{"drf.hcl": "min_offer = \"cpus:1\"\n", "empty.hcl": "  \n"}
	readFile := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
	}
	env := func(k string) string {
		if k == "CORRAL_MASTER" {
			return "10.0.0.1:5050"
		}
		return ""
	}
	for _, tc := range []struct {
		name string
		args []string
		want allocatorCommand
		err  string
	}{
		{"list", []string{"list"}, allocatorCommand{verb: "list", master: "10.0.0.1:5050"}, ""},
		{"show json", []string{"show", "-json", "-master", "h:1"}, allocatorCommand{verb: "show", master: "h:1", json: true}, ""},
		{"set plain", []string{"set", "quota"}, allocatorCommand{verb: "set", name: "quota", master: "10.0.0.1:5050", promote: "auto"}, ""},
		{"set all flags after the name", []string{"set", "drf", "-config", "drf.hcl", "-shadow", "5", "-promote", "manual", "-wait"},
			allocatorCommand{verb: "set", name: "drf", master: "10.0.0.1:5050", config: files["drf.hcl"], shadow: 5, promote: "manual", wait: true}, ""},
		{"promote", []string{"promote"}, allocatorCommand{verb: "promote", master: "10.0.0.1:5050"}, ""},
		{"no subcommand", nil, allocatorCommand{}, "missing subcommand"},
		{"unknown subcommand", []string{"swap", "drf"}, allocatorCommand{}, `unknown subcommand "swap"`},
		{"set without a name", []string{"set"}, allocatorCommand{}, "set takes one allocator plugin name, got 0 arguments"},
		{"set with two names", []string{"set", "a", "b"}, allocatorCommand{}, "got 2 arguments"},
		{"negative shadow", []string{"set", "drf", "-shadow", "-1"}, allocatorCommand{}, "-shadow must be 0 or more cycles, got -1"},
		{"bad promote", []string{"set", "drf", "-promote", "never"}, allocatorCommand{}, `-promote must be auto or manual, got "never"`},
		{"missing config file", []string{"set", "drf", "-config", "nope.hcl"}, allocatorCommand{}, "-config: open nope.hcl: file does not exist"},
		{"empty config file", []string{"set", "drf", "-config", "empty.hcl"}, allocatorCommand{}, "-config: empty.hcl is empty"},
		{"list with an argument", []string{"list", "drf"}, allocatorCommand{}, `list takes no arguments, got ["drf"]`},
		{"set-only flag on show", []string{"show", "-wait"}, allocatorCommand{}, "flag provided but not defined: -wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAllocatorArgs(tc.args, env, readFile)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				var ue *usageError
				if !errors.As(err, &ue) {
					t.Errorf("error %T is not a usage error (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
	if _, err := parseAllocatorArgs([]string{"-h"}, env, readFile); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}
