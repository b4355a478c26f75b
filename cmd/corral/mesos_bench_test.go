package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/mesospb"
	"github.com/corral-project/corral/core/api/mesos/mesostest"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
	corralpb "github.com/corral-project/corral/sdk/proto"
	"github.com/corral-project/corral/sdk/scheduler"
)

// oneTask is the same one-task framework on corral's gRPC SDK: launch
// `true` on the first offer, tear down at TASK_FINISHED (Run acknowledges).
type oneTask struct{ launched, finished bool }

func (f *oneTask) Subscribed(context.Context, scheduler.Driver, string, bool) {}
func (f *oneTask) Rescinded(context.Context, scheduler.Driver, string)        {}
func (f *oneTask) Error(context.Context, scheduler.Driver, string)            {}

func (f *oneTask) Offers(ctx context.Context, d scheduler.Driver, offers []*corralpb.Offer) {
	for _, o := range offers {
		if f.launched {
			_ = d.Decline(ctx, []string{o.Id}, nil)
			continue
		}
		taken, _, ok := scheduler.TakeScalars(o.Resources, map[string]float64{"cpus": 0.1, "mem": 32})
		if !ok {
			_ = d.Decline(ctx, []string{o.Id}, nil)
			continue
		}
		f.launched = d.Launch(ctx, []string{o.Id}, []*corralpb.TaskInfo{{TaskId: "t", Name: "t", Resources: taken,
			Command: &corralpb.CommandInfo{Shell: true, Value: "true"}}}, nil) == nil
	}
}

func (f *oneTask) Update(ctx context.Context, d scheduler.Driver, st *corralpb.TaskStatus) {
	if st.State == corralpb.TaskState_TASK_FINISHED {
		f.finished = true
		_ = d.Teardown(ctx)
	}
}

// mesosOneTask is a whole one-task framework over the v1 API: subscribe,
// take an offer, launch `true`, acknowledge its updates until
// TASK_FINISHED, tear down.
func mesosOneTask(b *testing.B, addr, enc string) {
	ctx := context.Background()
	c := mesostest.New(addr, enc)
	s, err := c.Subscribe(ctx, mesostest.SubscribeCall("bench"), enc)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ev, err := s.Await(mesosWait, "an offer", func(e *schedpb.Event) bool { return len(e.GetOffers().GetOffers()) > 0 })
	if err != nil {
		b.Fatal(err)
	}
	o := ev.GetOffers().GetOffers()[0]
	fid := mesostest.FID(s.FrameworkID)
	call := func(c2 *schedpb.Call) {
		c2.FrameworkId = fid
		if r, err := c.Call(ctx, s.ID, c2); err != nil || r.Status != 202 {
			b.Fatalf("%s: %d %q %v", c2.GetType(), r.Status, r.Body, err)
		}
	}
	call(&schedpb.Call{Type: schedpb.Call_ACCEPT.Enum(), Accept: &schedpb.Call_Accept{OfferIds: []*mesospb.OfferID{o.Id},
		Operations: []*mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{
			TaskInfos: []*mesospb.TaskInfo{{Name: proto.String("t"), TaskId: &mesospb.TaskID{Value: proto.String("t")}, AgentId: o.AgentId,
				Resources: mesosResources(0.1, 32), Command: &mesospb.CommandInfo{Value: proto.String("true")}}}}}}}})
	_, err = s.Await(mesosWait, "TASK_FINISHED", func(e *schedpb.Event) bool {
		st := e.GetUpdate().GetStatus()
		if st == nil {
			return false
		}
		if len(st.Uuid) > 0 {
			call(&schedpb.Call{Type: schedpb.Call_ACKNOWLEDGE.Enum(), Acknowledge: &schedpb.Call_Acknowledge{AgentId: st.AgentId, TaskId: st.TaskId, Uuid: st.Uuid}})
		}
		if st.GetState() != mesospb.TaskState_TASK_STARTING && st.GetState() != mesospb.TaskState_TASK_RUNNING && st.GetState() != mesospb.TaskState_TASK_FINISHED {
			b.Fatalf("task ended %v", st)
		}
		return st.GetState() == mesospb.TaskState_TASK_FINISHED
	})
	if err != nil {
		b.Fatal(err)
	}
	call(&schedpb.Call{Type: schedpb.Call_TEARDOWN.Enum()})
}

// BenchmarkMesosOneTaskRoundTrip compares a one-task framework through the
// Mesos v1 HTTP API (both encodings) with the same job through corral's
// gRPC SDK (sdk/scheduler, the same steps), on one idle dev cluster: subscribe to
// TASK_FINISHED acknowledged and torn down.
//
//	make bench BENCH=MesosOneTaskRoundTrip BENCHTIME=20x
func BenchmarkMesosOneTaskRoundTrip(b *testing.B) {
	addr, _ := startDev(b)
	run := map[string]func(){
		"v1-json":     func() { mesosOneTask(b, addr, mesostest.JSON) },
		"v1-protobuf": func() { mesosOneTask(b, addr, mesostest.Protobuf) },
		"grpc-sdk": func() {
			ctx, cancel := context.WithTimeout(context.Background(), mesosWait)
			defer cancel()
			fw := &oneTask{}
			if err := scheduler.Run(ctx, scheduler.Config{Master: addr, Framework: &corralpb.FrameworkInfo{Name: "bench", User: "root"}}, fw); err != nil || !fw.finished {
				b.Fatalf("one-task SDK framework: finished %v, %v", fw.finished, err)
			}
		},
	}
	for _, name := range []string{"grpc-sdk", "v1-json", "v1-protobuf"} {
		b.Run(name, func(b *testing.B) {
			run[name]() // warm-up: first allocation, page cache
			var times []time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				run[name]()
				times = append(times, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(float64(medianOf(times).Microseconds())/1000, "median-ms")
		})
	}
}
