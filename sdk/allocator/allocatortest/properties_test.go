package allocatortest

import (
	"context"
	"regexp"
	"testing"
)

// TestSafetyCatchesBugs runs the safety workloads against first-fit and
// its deliberately broken variants: the correct one passes, and each bug
// is reported with its cycle and what went wrong.
func TestSafetyCatchesBugs(t *testing.T) {
	for _, tc := range []struct {
		bug    string
		limits bool
		want   string // regexp; empty: no violation
	}{
		{bug: "", limits: false},
		{bug: "", limits: true},
		{bug: bugDoubleOffer, want: `^cycle \d+ \(now \d+\): invalid offer .*: not free on the agent`},
		{bug: bugIgnoreSuppress, want: `^cycle \d+ .*framework suppressed offers for role`},
		{bug: bugIgnoreFilters, want: `^cycle \d+ .*made despite the filter on .* until \d+`},
		{bug: bugIgnoreLimits, limits: true, want: `^cycle \d+ .*takes role \S+'s subtree to .*, past its limit`},
		{bug: bugIgnoreMaxOffers, want: `^cycle \d+ .*invalid offer .*: proposal \d+ is beyond max_offers \d+`},
		{bug: bugRevokeGuaranteed, want: `^cycle \d+ .*refused revocation \S+ long-task: the task is within its role's guarantee`},
	} {
		name := tc.bug
		if name == "" {
			name = "correct"
		}
		if tc.limits {
			name += "/limits"
		}
		t.Run(name, func(t *testing.T) {
			var err error
			for seed := uint64(1); seed <= 8 && err == nil; seed++ {
				p := newFake()
				must(t, p.SetConfig(context.Background(), []byte(`{"bug":"`+tc.bug+`"}`), "v2"))
				err = RunSafety(NewSim(p), seed, 150, tc.limits)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("violation reported for a correct policy: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no violation reported; want %s", tc.want)
			case tc.want != "" && !regexp.MustCompile(tc.want).MatchString(err.Error()):
				t.Fatalf("violation %q, want one matching %s", err, tc.want)
			}
		})
	}
}

// TestFairnessCatchesUnfairPolicy: first-fit gives every agent to the
// first framework, which both fairness workloads must report.
func TestFairnessCatchesUnfairPolicy(t *testing.T) {
	for _, demand := range []bool{false, true} {
		err := RunFairness(NewSim(newFake()), 1, demand, nil)
		if err == nil || !regexp.MustCompile(`^after filling the cluster: dominant shares did not converge within one task \(f1=\S+ f2=\S+.*\): f\d \(share \S+\) is below f1's share before its last task`).MatchString(err.Error()) {
			t.Errorf("demand %v: %v, want a convergence failure naming f1", demand, err)
		}
	}
}

// TestTurnOrder: over n! rounds every cluster follows every other one
// equally often within a round, and each round is a permutation.
func TestTurnOrder(t *testing.T) {
	for n := 1; n <= 4; n++ {
		follows := map[[2]int]int{}
		rounds := 1
		for k := 2; k <= n; k++ {
			rounds *= k
		}
		for r := range rounds {
			o := turnOrder(r, n)
			seen := map[int]bool{}
			for j, i := range o {
				seen[i] = true
				if j > 0 {
					follows[[2]int{o[j-1], i}]++
				}
			}
			if len(seen) != n || len(o) != n {
				t.Fatalf("n=%d round %d: %v is not a permutation", n, r, o)
			}
		}
		for pair, k := range follows {
			if k != follows[[2]int{pair[1], pair[0]}] || k != rounds/n {
				t.Errorf("n=%d: %d follows %d %d times in %d rounds", n, pair[1], pair[0], k, rounds)
			}
		}
	}
}
