package resources

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

func TestParseAndString(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"cpus:4;mem:1024", "cpus:4;mem:1024"},
		{" mem : 512 ; cpus:0.5 ", "cpus:0.5;mem:512"},
		{"ports:[31000-31005,31003-31010,32000]", "ports:[31000-31010,32000-32000]"},
		{"ports:[1-2,3-4]", "ports:[1-4]"},
		{"zones:{b,a,b}", "zones:{a,b}"},
		{"cpus:0", ""},
		{"", ""},
		{"cpus:0.0004", ""}, // below the fixed-point resolution
		{"cpus:0.0006", "cpus:0.001"},
	}
	for _, tc := range cases {
		r, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got := r.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	cases := []struct{ in, want string }{
		{"cpus", "want name:value"},
		{"cpus:x", `"x" is not a number`},
		{"cpus:-1", "negative"},
		{"cpus:NaN", "NaN"},
		{"cpus:Inf", "infinite"},
		{"cpus:1;cpus:2", "given twice"},
		{"ports:[5-1]", "begin is after end"},
		{"ports:[1-2", "closing ]"},
		{"ports:[a-b]", "unsigned integers"},
		{"s:{a,b", "closing }"},
	}
	for _, tc := range cases {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestArithmetic(t *testing.T) {
	a := MustParse("cpus:4;mem:1024;ports:[1000-1009];zones:{a,b}")
	b := MustParse("cpus:1.5;mem:1024;ports:[1002-1003];zones:{a}")
	diff := a.Subtract(b)
	if got, want := diff.String(), "cpus:2.5;ports:[1000-1001,1004-1009];zones:{b}"; got != want {
		t.Errorf("a-b = %q, want %q", got, want)
	}
	if !a.Contains(b) || b.Contains(a) {
		t.Errorf("containment wrong: a⊇b=%v b⊇a=%v", a.Contains(b), b.Contains(a))
	}
	if !diff.Add(b).Equal(a) {
		t.Errorf("(a-b)+b = %s, want %s", diff.Add(b), a)
	}
	if got := b.Subtract(a); !got.IsEmpty() {
		t.Errorf("b-a should saturate to empty, got %s", got)
	}
	if got, want := a.Intersect(MustParse("cpus:10;ports:[1005-2000];zones:{b,c}")).String(), "cpus:4;ports:[1005-1009];zones:{b}"; got != want {
		t.Errorf("intersect = %q, want %q", got, want)
	}
	if !(Resources{}).Contains(Resources{}) || !a.Contains(Resources{}) {
		t.Error("everything contains the empty set")
	}
	if MustParse("cpus:1").Contains(MustParse("mem:1")) {
		t.Error("cpus:1 must not contain mem:1")
	}
}

// Fixed point: a million 0.1-CPU offers split and returned leave no drift.
func TestNoDrift(t *testing.T) {
	total := MustParse("cpus:16")
	avail := total
	piece := NewScalar(CPUs, 0.1)
	for i := 0; i < 100000; i++ {
		avail = avail.Subtract(piece)
		avail = avail.Add(piece)
	}
	for i := 0; i < 160; i++ {
		avail = avail.Subtract(piece)
	}
	if !avail.IsEmpty() {
		t.Fatalf("after handing out 160 x 0.1 of 16 CPUs, %s is left", avail)
	}
}

func TestRangeTake(t *testing.T) {
	rs := RangeSet{{10, 12}, {20, 29}}
	got, ok := rs.Take(5)
	if !ok || got.String() != "[10-12,20-21]" {
		t.Errorf("Take(5) = %s, %v", got, ok)
	}
	if _, ok := rs.Take(14); ok {
		t.Error("Take beyond the set must fail")
	}
	if rs.Len() != 13 {
		t.Errorf("Len = %d, want 13", rs.Len())
	}
	if max := (RangeSet{{math.MaxUint64 - 1, math.MaxUint64}}).Union(RangeSet{{0, 1}}); len(max) != 2 {
		t.Errorf("ranges at the top of uint64 must not wrap: %s", max)
	}
}

func TestProtoRoundTripAndValidation(t *testing.T) {
	r := MustParse("cpus:2.5;mem:64;ports:[1-5,9-9];zones:{x,y}")
	back, err := FromProto(r.ToProto())
	if err != nil || !back.Equal(r) {
		t.Fatalf("round trip: %s, %v; want %s", back, err, r)
	}
	bad := []struct {
		in   []*corralpb.Resource
		want string
	}{
		{[]*corralpb.Resource{nil}, "null"},
		{[]*corralpb.Resource{{Name: "", Value: &corralpb.Resource_Scalar{Scalar: 1}}}, "empty name"},
		{[]*corralpb.Resource{{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: math.NaN()}}}, "NaN"},
		{[]*corralpb.Resource{{Name: "mem", Value: &corralpb.Resource_Scalar{Scalar: -3}}}, "negative"},
		{[]*corralpb.Resource{{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: math.Inf(1)}}}, "infinite"},
		{[]*corralpb.Resource{{Name: "cpus"}}, "no value"},
		{[]*corralpb.Resource{{Name: "ports", Value: &corralpb.Resource_Ranges{Ranges: &corralpb.Ranges{Range: []*corralpb.Range{{Begin: 9, End: 1}}}}}}, "begins after it ends"},
	}
	for _, tc := range bad {
		if _, err := FromProto(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromProto(%v) = %v, want error with %q", tc.in, err, tc.want)
		}
	}
	// Repeated names add up.
	sum, err := FromProto([]*corralpb.Resource{
		{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: 1}},
		{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: 0.5}},
	})
	if err != nil || sum.Scalar(CPUs) != 1.5 {
		t.Errorf("repeated cpus: %s, %v", sum, err)
	}
}

// TestAgainstReferenceModel checks Add, Subtract, Contains and Equal against
// plain maps of integers over seeded random values.
func TestAgainstReferenceModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"cpus", "disk", "gpus", "mem"}
	random := func() (Resources, map[string]int64, map[uint64]bool) {
		var r Resources
		ref := map[string]int64{}
		ports := map[uint64]bool{}
		for _, n := range names {
			if rng.IntN(3) == 0 {
				continue
			}
			v := int64(rng.IntN(5000))
			r = r.Add(NewScalar(n, float64(v)/1000))
			ref[n] += v
		}
		for range rng.IntN(3) {
			b := uint64(rng.IntN(40))
			e := b + uint64(rng.IntN(5))
			r = r.Add(NewRanges(Ports, RangeSet{{b, e}}))
			for p := b; p <= e; p++ {
				ports[p] = true
			}
		}
		return r, ref, ports
	}
	for i := range 2000 {
		a, ra, pa := random()
		b, rb, pb := random()
		sum, diff := a.Add(b), a.Subtract(b)
		contains := true
		for _, n := range names {
			if got, want := toFixed(sum.Scalar(n)), ra[n]+rb[n]; got != want {
				t.Fatalf("case %d: (%s)+(%s): %s = %d, want %d", i, a, b, n, got, want)
			}
			if got, want := toFixed(diff.Scalar(n)), max(ra[n]-rb[n], 0); got != want {
				t.Fatalf("case %d: (%s)-(%s): %s = %d, want %d", i, a, b, n, got, want)
			}
			if rb[n] > ra[n] {
				contains = false
			}
		}
		for p := range pb {
			if !pa[p] {
				contains = false
			}
			if diff.Ranges(Ports).Contains(RangeSet{{p, p}}) {
				t.Fatalf("case %d: port %d survived subtraction: %s - %s = %s", i, p, a, b, diff)
			}
		}
		if got := a.Contains(b); got != contains {
			t.Fatalf("case %d: (%s) contains (%s) = %v, want %v", i, a, b, got, contains)
		}
		if !sum.Subtract(b).Contains(diff) || !a.Equal(a.Add(Resources{})) {
			t.Fatalf("case %d: identities broken for %s and %s", i, a, b)
		}
	}
}

func BenchmarkAddSubtract(b *testing.B) {
	total := MustParse("cpus:32;mem:131072;disk:100000;ports:[31000-32000]")
	used := MustParse("cpus:8;mem:32768")
	b.ReportAllocs()
	for range b.N {
		avail := total.Subtract(used)
		if !avail.Add(used).Contains(total) {
			b.Fatal("arithmetic broke")
		}
	}
}
