package resources

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	corralpb "github.com/corral-project/corral/sdk/proto"
)

var parseSeeds = []string{
	"cpus:4;mem:1024;ports:[31000-32000,33000-33010];zones:{a,b}",
	"cpus:0.001", "cpus:NaN", "cpus:Inf", "cpus:-1", "cpus:1e308", "mem:9223372036854775",
	"ports:[5-1]", "ports:[1-2", "s:{a", "a:1;a:2", ":1", "cpus:", " ; ;", "x:[18446744073709551615-18446744073709551615]",
}

// FuzzParse: whatever the text, Parse either names the problem or returns
// resources whose quantities are finite and non-negative, and whose text
// form parses back to the same resources.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q): empty error", s)
			}
			return
		}
		checkSane(t, s, r)
		back, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse back: %v", s, r.String(), err)
		}
		if !back.Equal(r) {
			t.Fatalf("Parse(%q) = %q, parsed back as %q", s, r, back)
		}
	})
}

// FuzzFromProto: resources arriving on the wire (agent registration,
// accepts, task infos) are either refused or sane.
func FuzzFromProto(f *testing.F) {
	for _, s := range []string{"cpus:1;mem:2;ports:[1-3];z:{a}", "cpus:0"} {
		b, _ := proto.Marshal(&corralpb.TaskInfo{Resources: MustParse(s).ToProto()})
		f.Add(b)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1), -1, 1e300} {
		b, _ := proto.Marshal(&corralpb.TaskInfo{Resources: []*corralpb.Resource{{Name: "cpus", Value: &corralpb.Resource_Scalar{Scalar: v}}}})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ti corralpb.TaskInfo
		if proto.Unmarshal(b, &ti) != nil {
			return
		}
		r, err := FromProto(ti.Resources)
		if err != nil {
			return
		}
		checkSane(t, "proto", r)
		back, err := FromProto(r.ToProto())
		if err != nil || !back.Equal(r) {
			t.Fatalf("%q does not survive ToProto/FromProto: %q, %v", r, back, err)
		}
	})
}

// FuzzAdd: sums never wrap around, however large the parts (a cluster's
// total is the sum of every agent's resources).
func FuzzAdd(f *testing.F) {
	f.Add(1.0, 2.0, 3)
	f.Add(9e15, 9e15, 2)
	f.Fuzz(func(t *testing.T, a, b float64, n int) {
		if ValidateScalar("x", a) != nil || ValidateScalar("x", b) != nil {
			return
		}
		sum := NewScalar("x", a)
		for i := 0; i < n%64; i++ {
			next := sum.Add(NewScalar("x", b))
			if next.Scalar("x") < sum.Scalar("x") {
				t.Fatalf("adding %v to %v went down to %v", b, sum.Scalar("x"), next.Scalar("x"))
			}
			sum = next
		}
		checkSane(t, "sum", sum)
	})
}

func checkSane(t *testing.T, from string, r Resources) {
	t.Helper()
	r.EachScalar(func(name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Fatalf("%q gave %s = %v", from, name, v)
		}
		if strings.TrimSpace(name) != name || name == "" {
			t.Fatalf("%q gave a scalar named %q", from, name)
		}
	})
}
