package main

import (
	"strings"
	"testing"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

func TestExecHealthFlags(t *testing.T) {
	cases := []struct {
		args    []string
		want    *corralpb.HealthCheck
		wantErr string
	}{
		{args: []string{"--", "true"}},
		{args: []string{"--health-cmd", "curl -f localhost:80", "--", "true"},
			want: &corralpb.HealthCheck{Type: corralpb.HealthCheck_COMMAND, Command: "curl -f localhost:80"}},
		{args: []string{"--health-http", "8080/ready", "--health-interval", "2s", "--health-retries", "5", "--", "true"},
			want: &corralpb.HealthCheck{Type: corralpb.HealthCheck_HTTP, Port: 8080, Path: "/ready", IntervalSeconds: 2, ConsecutiveFailures: 5}},
		{args: []string{"--health-http", ":9000", "--", "true"},
			want: &corralpb.HealthCheck{Type: corralpb.HealthCheck_HTTP, Port: 9000, Path: "/"}},
		{args: []string{"--health-http", "http://x", "--", "true"}, wantErr: "want PORT or PORT/PATH"},
		{args: []string{"--health-http", "80", "--health-cmd", "x", "--", "true"}, wantErr: "one of"},
		{args: []string{"--health-retries", "2", "--", "true"}, wantErr: "need --health-cmd"},
	}
	for _, tc := range cases {
		o, err := parseExecFlags(tc.args, func(string) string { return "" })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		got := o.health
		if (got == nil) != (tc.want == nil) || (got != nil && (got.Type != tc.want.Type || got.Command != tc.want.Command ||
			got.Port != tc.want.Port || got.Path != tc.want.Path || got.IntervalSeconds != tc.want.IntervalSeconds ||
			got.ConsecutiveFailures != tc.want.ConsecutiveFailures)) {
			t.Errorf("%v: health %v, want %v", tc.args, got, tc.want)
		}
	}
}
