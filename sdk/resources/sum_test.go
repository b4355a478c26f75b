package resources

import (
	"math/rand"
	"testing"
)

// TestSumEqualsAdd: a Sum equals folding Add over the same terms, and a
// value it returned does not change when more is added (immutability).
func TestSumEqualsAdd(t *testing.T) {
	terms := []string{"cpus:0.1;mem:32", "cpus:0.1;mem:32", "mem:1", "cpus:1;gpus:1", "ports:[31000-31002]",
		"cpus:0.1;mem:32;ports:[31005-31006]", "disk:10", "", "cpus:0.001"}
	rng := rand.New(rand.NewSource(1))
	for round := range 200 {
		var s Sum
		var want Resources
		var snapshots []Resources
		var snapWant []string
		for range rng.Intn(30) {
			r := MustParse(terms[rng.Intn(len(terms))])
			s.Add(r)
			want = want.Add(r)
			if rng.Intn(4) == 0 {
				snapshots = append(snapshots, s.Resources())
				snapWant = append(snapWant, want.String())
			}
		}
		if got := s.Resources(); !got.Equal(want) {
			t.Fatalf("round %d: sum %s, folding Add %s", round, got, want)
		}
		for i, v := range snapshots {
			if v.String() != snapWant[i] {
				t.Fatalf("round %d: a returned sum changed from %s to %s", round, snapWant[i], v)
			}
		}
	}
}

func BenchmarkSumScalars(b *testing.B) {
	r := MustParse("cpus:0.1;mem:32")
	b.ReportAllocs()
	for range b.N {
		var s Sum
		for range 1000 {
			s.Add(r)
		}
		_ = s.Resources()
	}
}
