package conf

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboard: conf/grafana/corral.json is a dashboard whose
// every panel queries metrics corral exports: each corral_* name it uses is
// defined in the master's or the agent's Go source, so renaming a metric
// without the dashboard fails here.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana/corral.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana/corral.json: %v", err)
	}
	defined := map[string]bool{}
	def := regexp.MustCompile(`"(corral_[a-z_]+)"`)
	err = filepath.WalkDir("../core", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		for _, m := range def.FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`corral_[a-z_]+`)
	queries := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			for _, name := range used.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				if !defined[base] {
					t.Errorf("panel %q queries %s, which corral does not export", p.Title, name)
				}
			}
		}
	}
	if queries < 20 {
		t.Errorf("the dashboard has %d queries; want the cluster, roles, allocator and containers covered", queries)
	}
}
