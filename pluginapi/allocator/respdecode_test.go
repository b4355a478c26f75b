package allocator

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	allocatorpb "github.com/corral-project/corral/pluginapi/allocator/proto"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
)

// TestDecodeResponse: the host's direct decoder reads every response as
// the generated code plus allocateResponseFromProto do: offers by string
// and by handle, by resource table and inline, in columns, metrics and
// revocations; and refuses what they refuse.
func TestDecodeResponse(t *testing.T) {
	tab := idTable{"a1", "a2", "f1", "r1"}
	tabAll := append(slices.Clone(tab), "a3", "f2")
	var offers []Proposal
	for i := range 50 {
		offers = append(offers, Proposal{FrameworkID: []string{"f1", "f2"}[i%2], Role: "r1", AgentID: fmt.Sprintf("a%d", 1+i%3),
			Resources: resources.MustParse(fmt.Sprintf("cpus:%d;mem:%d;ports:[%d-%d]", 1+i%4, 512*(1+i%2), 31000+i, 31005+i))})
	}
	resp := &AllocateResponse{AppliedVersion: 77, Offers: offers, Metrics: map[string]float64{"share/role/r1": 0.25, "x": 1},
		Revocations: []Revocation{{FrameworkID: "f1", TaskID: "t1", AgentID: "a1", Reason: RevokePreemption}}}
	enc, encAll := idEncoder{}, idEncoder{}
	for i, s := range tabAll {
		if i < len(tab) {
			enc[s] = uint32(i + 1)
		}
		encAll[s] = uint32(i + 1)
	}
	if allocateResponseToColumns(&allocatorpb.AllocateResponse{}, &allocatorpb.OfferColumns{}, resp, enc) {
		t.Error("offers naming IDs without handles put in columns")
	}
	for _, tc := range []struct {
		name string
		enc  idEncoder
		tab  idTable
		cols bool
	}{{"strings", nil, nil, false}, {"handles", enc, tab, false}, {"columns", encAll, tabAll, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := allocateResponseToProto(resp, tc.enc)
			if tc.cols {
				p = &allocatorpb.AllocateResponse{}
				if !allocateResponseToColumns(p, &allocatorpb.OfferColumns{}, resp, tc.enc) {
					t.Fatal("offers with handles for every ID not put in columns")
				}
				if len(p.Offers) != 0 || len(p.OfferColumns.Agent) != len(offers) {
					t.Fatalf("%d offers as messages, %d in columns", len(p.Offers), len(p.OfferColumns.Agent))
				}
			} else {
				// One offer inline, as a plugin without the table sends.
				p.Offers[3].ResourcesRef, p.Offers[3].Resources = 0, offers[3].Resources.ToProto()
			}
			p.ResponseId, p.IdsEpoch = 9, 5
			b, err := proto.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			want, err := allocateResponseFromProto(p, tc.tab)
			if err != nil {
				t.Fatal(err)
			}
			var gotEpoch uint64
			got, err := decodeResponse(b, func(e uint64) (idTable, error) { gotEpoch = e; return tc.tab, nil })
			if err != nil {
				t.Fatal(err)
			}
			if gotEpoch != 5 || got.idsEpoch != 5 || got.responseID != 9 || got.size != len(b) {
				t.Errorf("epoch %d/%d, response ID %d, size %d", gotEpoch, got.idsEpoch, got.responseID, got.size)
			}
			opt := cmp.Comparer(func(x, y resources.Resources) bool { return x.Equal(y) })
			if d := cmp.Diff(want, got.resp, opt); d != "" {
				t.Errorf("decoded differently (-generated +direct):\n%s", d)
			}
			if len(got.resp.Offers) != len(offers) {
				t.Errorf("%d offers, want %d", len(got.resp.Offers), len(offers))
			}
		})
	}
	for _, tc := range []struct {
		name string
		p    *allocatorpb.AllocateResponse
		want string
	}{
		{"resource ref past the table", &allocatorpb.AllocateResponse{Offers: []*allocatorpb.OfferProposal{{AgentId: "a", ResourcesRef: 2}},
			ResourceTable: []*corralpb.ResourceList{{}}}, "refers to resource list 2 of 1"},
		{"handle past the dictionary", &allocatorpb.AllocateResponse{Offers: []*allocatorpb.OfferProposal{{AgentHandle: 9}}}, "agent handle 9"},
		{"bad inline resources", &allocatorpb.AllocateResponse{Offers: []*allocatorpb.OfferProposal{{AgentId: "a",
			Resources: []*corralpb.Resource{{Name: ""}}}}}, "empty name"},
		{"columns of different lengths", &allocatorpb.AllocateResponse{OfferColumns: &allocatorpb.OfferColumns{
			Framework: []uint32{3, 3}, Role: []uint32{4}, Agent: []uint32{1}, ResourcesRef: []uint32{1}}}, "offer columns of 2 frameworks"},
		{"column handle 0", &allocatorpb.AllocateResponse{OfferColumns: &allocatorpb.OfferColumns{
			Framework: []uint32{3}, Role: []uint32{0}, Agent: []uint32{1}, ResourcesRef: []uint32{1}},
			ResourceTable: []*corralpb.ResourceList{{}}}, "role handle 0"},
		{"column resource ref past the table", &allocatorpb.AllocateResponse{OfferColumns: &allocatorpb.OfferColumns{
			Framework: []uint32{3}, Role: []uint32{4}, Agent: []uint32{1}, ResourcesRef: []uint32{2}},
			ResourceTable: []*corralpb.ResourceList{{}}}, "refers to resource list 2 of 1"},
	} {
		b, _ := proto.Marshal(tc.p)
		if _, err := decodeResponse(b, func(uint64) (idTable, error) { return tab, nil }); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := decodeResponse([]byte{0xff}, func(uint64) (idTable, error) { return nil, nil }); err == nil {
		t.Error("garbage decoded")
	}
}
