package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/corral-project/corral/sdk/discovery"
)

// resolveMaster turns a -master spec into one address for the operator
// API: a single host:port as it is; consul://host:port/prefix the leader
// Consul names; a list the first master that answers (a standby redirects
// writes to the leader with 307, which the HTTP client follows).
func resolveMaster(ctx context.Context, spec string) (string, error) {
	f, err := discovery.Parse(spec)
	if err != nil {
		return "", err
	}
	if f.Single() {
		addr, _ := f.Pick(ctx, "")
		return addr, nil
	}
	if strings.HasPrefix(spec, "consul://") {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return f.Pick(ctx, "")
	}
	var errs []string
	for _, a := range strings.Split(spec, ",") {
		a = strings.TrimPrefix(strings.TrimSpace(a), "http://")
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		req, _ := http.NewRequestWithContext(hctx, http.MethodGet, "http://"+a+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		resp.Body.Close()
		return a, nil
	}
	return "", fmt.Errorf("no master of %s answers: %s", spec, strings.Join(errs, "; "))
}
