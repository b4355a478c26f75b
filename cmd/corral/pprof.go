package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// CORRAL_PPROF_ADDR=127.0.0.1:0 makes any corral process (master, agent,
// emulated agents) serve Go's profiler at /debug/pprof/ on that address,
// printed on stderr as "corral: pprof at http://ADDR". It is an
// environment variable, not a flag, because it is for whoever measures
// (make bench-scale), not for running a cluster; it is off by default.
func init() {
	addr := os.Getenv("CORRAL_PPROF_ADDR")
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral: CORRAL_PPROF_ADDR=%s: %v\n", addr, err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintf(os.Stderr, "corral: pprof at http://%s\n", l.Addr())
	go func() { _ = http.Serve(l, mux) }()
}
