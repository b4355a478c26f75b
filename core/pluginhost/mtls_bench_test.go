package pluginhost

import (
	"context"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// BenchmarkPluginMTLS measures what host <-> plugin mutual TLS costs, with
// plain text as the baseline in the same run: the latency of one
// allocation cycle's plugin call (Allocate, the one call per cycle), and
// the start of a plugin (two key pairs made and a TLS handshake, paid
// once per allocator or isolator and once per task for executors).
//
//	go test -run '^$' -bench PluginMTLS -benchtime 2000x ./core/pluginhost/
func BenchmarkPluginMTLS(b *testing.B) {
	ctx := context.Background()
	callMedian := func(tls bool) time.Duration {
		autoMTLS = tls
		defer func() { autoMTLS = true }()
		inst, err := Start(ctx, allocSpec(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer inst.Kill()
		alloc := inst.Raw().(allocator.Allocator)
		times := make([]time.Duration, 0, b.N)
		for i := range uint64(b.N) {
			start := time.Now()
			if _, err := alloc.Allocate(ctx, &allocator.AllocateRequest{BaseVersion: i, TargetVersion: i + 1}); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
		}
		return medianOf(times)
	}
	startMedian := func(tls bool) time.Duration {
		autoMTLS = tls
		defer func() { autoMTLS = true }()
		times := make([]time.Duration, 0, 10)
		for range 10 {
			start := time.Now()
			inst, err := Start(ctx, allocSpec(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
			inst.Kill()
		}
		return medianOf(times)
	}
	b.ResetTimer()
	plainCall, tlsCall := callMedian(false), callMedian(true)
	b.StopTimer()
	plainStart, tlsStart := startMedian(false), startMedian(true)
	b.ReportMetric(float64(plainCall.Nanoseconds())/1000, "call-plain-us")
	b.ReportMetric(float64(tlsCall.Nanoseconds())/1000, "call-mtls-us")
	b.ReportMetric(float64(tlsCall)/float64(plainCall), "call-x-plain")
	b.ReportMetric(float64(plainStart.Microseconds())/1000, "start-plain-ms")
	b.ReportMetric(float64(tlsStart.Microseconds())/1000, "start-mtls-ms")
	b.ReportMetric(float64(tlsStart)/float64(plainStart), "start-x-plain")
}

func medianOf(ts []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ts...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}
