// Package health runs a task's health check with Mesos' semantics: a
// command, HTTP or TCP probe every interval after an initial delay, each
// bounded by a timeout; failures within the grace period do not count
// until the first success; after consecutive_failures failures in a row
// the task is to be killed. Each change of health is reported.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

// Mesos' defaults.
const (
	DefaultDelay               = 15 * time.Second
	DefaultInterval            = 10 * time.Second
	DefaultTimeout             = 20 * time.Second
	DefaultConsecutiveFailures = 3
	DefaultGrace               = 10 * time.Second
)

// Kinds of check.
const (
	Command = "command"
	HTTP    = "http"
	TCP     = "tcp"
)

// Check is one task's health check.
type Check struct {
	Kind                string
	Command             string // Command: /bin/sh -c, in Dir with Env
	Port                uint32 // HTTP, TCP: on 127.0.0.1
	Path, Scheme        string // HTTP
	Delay, Interval     time.Duration
	Timeout, Grace      time.Duration
	ConsecutiveFailures int
	Dir                 string
	Env                 []string
}

func seconds(s float64, def time.Duration) time.Duration {
	if s <= 0 {
		return def
	}
	return time.Duration(s * float64(time.Second))
}

// FromProto validates a task's HealthCheck and fills Mesos' defaults; dir
// and env are the task's sandbox and environment for command checks.
func FromProto(hc *corralpb.HealthCheck, dir string, env []string) (Check, error) {
	c := Check{
		Command: hc.GetCommand(), Port: hc.GetPort(), Path: hc.GetPath(), Scheme: hc.GetScheme(),
		Delay:               seconds(hc.GetDelaySeconds(), DefaultDelay),
		Interval:            seconds(hc.GetIntervalSeconds(), DefaultInterval),
		Timeout:             seconds(hc.GetTimeoutSeconds(), DefaultTimeout),
		Grace:               seconds(hc.GetGracePeriodSeconds(), DefaultGrace),
		ConsecutiveFailures: int(hc.GetConsecutiveFailures()),
		Dir:                 dir, Env: env,
	}
	if c.ConsecutiveFailures <= 0 {
		c.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	switch hc.GetType() {
	case corralpb.HealthCheck_COMMAND:
		c.Kind = Command
		if c.Command == "" {
			return c, errors.New("health check: a COMMAND check needs a command")
		}
	case corralpb.HealthCheck_HTTP:
		c.Kind = HTTP
		if c.Path == "" {
			c.Path = "/"
		}
		if c.Scheme == "" {
			c.Scheme = "http"
		}
		if c.Scheme != "http" && c.Scheme != "https" {
			return c, fmt.Errorf("health check: scheme %q: want http or https", c.Scheme)
		}
		if c.Port == 0 || c.Port > 65535 {
			return c, fmt.Errorf("health check: HTTP port %d is not a port", c.Port)
		}
	case corralpb.HealthCheck_TCP:
		c.Kind = TCP
		if c.Port == 0 || c.Port > 65535 {
			return c, fmt.Errorf("health check: TCP port %d is not a port", c.Port)
		}
	default:
		return c, fmt.Errorf("health check: type %v: want COMMAND, HTTP or TCP", hc.GetType())
	}
	return c, nil
}

// Probe runs the check once, within its timeout; nil means healthy.
func (c Check) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	switch c.Kind {
	case Command:
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.Command)
		cmd.Dir, cmd.Env = c.Dir, c.Env
		// Its own group, so that a timeout kills what it started too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			return fmt.Errorf("command check timed out after %v", c.Timeout)
		}
		if err != nil {
			return fmt.Errorf("command check: %v: %.200s", err, out)
		}
		return nil
	case HTTP:
		url := fmt.Sprintf("%s://127.0.0.1:%d%s", c.Scheme, c.Port, c.Path)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		// As Mesos: the certificate of a task's own endpoint is not checked.
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // health probe of the task's own port
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return fmt.Errorf("HTTP check %s: %w", url, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP check %s: status %d", url, resp.StatusCode)
		}
		return nil
	case TCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(c.Port))))
		if err != nil {
			return fmt.Errorf("TCP check: %w", err)
		}
		return conn.Close()
	}
	return fmt.Errorf("health check: unknown kind %q", c.Kind)
}

// Run checks until ctx ends or the task is to be killed. report is called
// on the first result and on every change of health; kill once, when the
// failures in a row reach ConsecutiveFailures, and Run then returns.
func Run(ctx context.Context, c Check, report func(healthy bool, msg string), kill func(msg string)) {
	start := time.Now()
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if !wait(c.Delay) {
		return
	}
	var last *bool
	succeeded, fails := false, 0
	for {
		err := c.Probe(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			succeeded, fails = true, 0
			if last == nil || !*last {
				report(true, "")
			}
			last = ptr(true)
		case !succeeded && time.Since(start) < c.Grace:
			// Still starting up: not counted.
		default:
			fails++
			if last == nil || *last {
				report(false, err.Error())
			}
			last = ptr(false)
			if fails >= c.ConsecutiveFailures {
				kill(fmt.Sprintf("health check failed %d times in a row: %v", fails, err))
				return
			}
		}
		if !wait(c.Interval) {
			return
		}
	}
}

func ptr(b bool) *bool { return &b }
