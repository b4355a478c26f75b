package resources

import (
	"encoding/json"
	"testing"
)

func TestStructuredJSON(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `{}`},
		{"cpus:2;mem:1024", `{"cpus":2,"mem":1024}`},
		{"cpus:0.125;ports:[31000-32000,33000-33000]", `{"cpus":0.125,"ports":[[31000,32000],[33000,33000]]}`},
		{"gpus:1;zones:{b,a}", `{"gpus":1,"zones":["a","b"]}`},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		b, err := json.Marshal(r.Structured())
		if err != nil || string(b) != tc.want {
			t.Errorf("%q: %s, %v; want %s", tc.in, b, err, tc.want)
		}
	}
}
