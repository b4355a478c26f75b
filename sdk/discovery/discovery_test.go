package discovery_test

import (
	"context"
	"errors"
	"testing"

	"github.com/corral-project/corral/sdk/discovery"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		wantErr bool
		single  bool
	}{
		{"127.0.0.1:5050", false, true},
		{"http://127.0.0.1:5050", false, true},
		{"10.0.0.1:5050, 10.0.0.2:5050", false, false},
		{"consul://127.0.0.1:8500/corral", false, false},
		{"consul://127.0.0.1:8500", false, false},
		{"", true, false},
		{"localhost", true, false},
		{"a:1,b", true, false},
		{"consul:///corral", true, false},
	} {
		f, err := discovery.Parse(tc.spec)
		if (err != nil) != tc.wantErr {
			t.Errorf("Parse(%q): err %v, want error %v", tc.spec, err, tc.wantErr)
			continue
		}
		if err == nil && f.Single() != tc.single {
			t.Errorf("Parse(%q).Single() = %v", tc.spec, f.Single())
		}
	}
}

func TestStaticListRoundRobinAndRedirects(t *testing.T) {
	f, err := discovery.Parse("a:1,b:2")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []string
	for range 3 {
		a, _ := f.Pick(ctx, "")
		got = append(got, a)
	}
	if got[0] != "a:1" || got[1] != "b:2" || got[2] != "a:1" {
		t.Fatalf("picks %v, want a:1 b:2 a:1", got)
	}
	if !f.Redirected(discovery.NotLeader("c:3")) {
		t.Fatal("NotLeader not recognised as a redirect")
	}
	if a, _ := f.Pick(ctx, ""); a != "c:3" {
		t.Fatalf("after a redirect Pick = %q, want the leader it named", a)
	}
	if f.Redirected(errors.New("boom")) {
		t.Fatal("a plain error taken for a redirect")
	}
	if l, ok := discovery.LeaderFrom(discovery.NotLeader("")); !ok || l != "" {
		t.Fatalf("NotLeader(\"\") = %q, %v", l, ok)
	}
}
