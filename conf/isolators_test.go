package conf

import (
	"reflect"
	"strings"
	"testing"
)

func TestAgentIsolators(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
		wantErr   string
	}{
		{name: "unset", src: `agent { isolator = "cgroups" }`},
		{name: "list", src: `agent {
  isolator  = "cgroups"
  isolators = ["process", "runc"]
}`, want: []string{"process", "runc"}},
		{name: "bad name", src: `agent { isolators = ["ok", "not ok"] }`, wantErr: `plugin name "not ok"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("test.hcl", []byte(tt.src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Agent.Isolators, tt.want) {
				t.Errorf("isolators = %v, want %v", cfg.Agent.Isolators, tt.want)
			}
		})
	}
}
