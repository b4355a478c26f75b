package mesos_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/corral-project/corral/core/api/mesos/mesostest"
	"github.com/corral-project/corral/core/api/mesos/schedpb"
)

// BenchmarkEventsPerSecond measures how many events one subscribed
// framework receives per second over the v1 API: one RECONCILE naming
// 10,000 tasks the master does not know makes the master answer with
// 10,000 UPDATE events; the clock runs from the call to the last event
// decoded by the client. Every event is its own flushed chunk.
//
//	go test -run '^$' -bench EventsPerSecond ./core/api/mesos
func BenchmarkEventsPerSecond(b *testing.B) {
	const events = 10000
	for _, enc := range encodings {
		b.Run(enc, func(b *testing.B) {
			_, addr := startServer(b)
			c := mesostest.New(addr, enc)
			s, err := c.Subscribe(context.Background(), mesostest.SubscribeCall("bench"), enc)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Await(wait, "HEARTBEAT", func(e *schedpb.Event) bool { return e.GetType() == schedpb.Event_HEARTBEAT }); err != nil {
				b.Fatal(err)
			}
			rec := &schedpb.Call_Reconcile{}
			for i := range events {
				rec.Tasks = append(rec.Tasks, &schedpb.Call_Reconcile_Task{TaskId: id("t" + strconv.Itoa(i))})
			}
			call := &schedpb.Call{FrameworkId: mesostest.FID(s.FrameworkID), Type: schedpb.Call_RECONCILE.Enum(), Reconcile: rec}
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if r, err := c.Call(context.Background(), s.ID, proto.Clone(call).(*schedpb.Call)); err != nil || r.Status != 202 {
					b.Fatalf("RECONCILE: %d %v", r.Status, err)
				}
				for n := 0; n < events; {
					ev, err := s.Next()
					if err != nil {
						b.Fatal(err)
					}
					if ev.GetType() == schedpb.Event_UPDATE {
						n++
					}
				}
				total += time.Since(start)
			}
			b.StopTimer()
			b.ReportMetric(float64(events*b.N)/total.Seconds(), "events/s")
		})
	}
}
