package pluginhost

import (
	"context"
	"testing"
	"time"

	"github.com/corral-project/corral/pluginapi/allocator"
)

// BenchmarkPluginMTLS measures what host <-> plugin mutual TLS costs, with
// plain text as the baseline in the same run, the two alternated so that
// both see the same machine load: the latency of one allocation cycle's
// plugin call (Allocate, the one call per cycle), and the start of a
// plugin (key pairs made on both sides and a TLS handshake, paid once per
// allocator or isolator and once per task for executors).
//
//	go test -run '^$' -bench PluginMTLS -benchtime 2000x ./core/pluginhost/
func BenchmarkPluginMTLS(b *testing.B) {
	ctx := context.Background()
	start := func(tls bool) (*Instance, time.Duration) {
		autoMTLS = tls
		defer func() { autoMTLS = true }()
		t0 := time.Now()
		inst, err := Start(ctx, allocSpec(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		return inst, time.Since(t0)
	}
	var startPlain, startTLS []time.Duration
	for range 15 {
		for _, tls := range []bool{false, true} {
			inst, d := start(tls)
			inst.Kill()
			if tls {
				startTLS = append(startTLS, d)
			} else {
				startPlain = append(startPlain, d)
			}
		}
	}
	plain, _ := start(false)
	defer plain.Kill()
	withTLS, _ := start(true)
	defer withTLS.Kill()
	call := func(inst *Instance, v uint64) time.Duration {
		t0 := time.Now()
		if _, err := inst.Raw().(allocator.Allocator).Allocate(ctx, &allocator.AllocateRequest{BaseVersion: v, TargetVersion: v + 1}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	callPlain := make([]time.Duration, 0, b.N)
	callTLS := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range uint64(b.N) {
		callPlain = append(callPlain, call(plain, i))
		callTLS = append(callTLS, call(withTLS, i))
	}
	b.StopTimer()
	pc, tc, ps, ts := medianOf(callPlain), medianOf(callTLS), medianOf(startPlain), medianOf(startTLS)
	b.ReportMetric(float64(pc.Nanoseconds())/1000, "call-plain-us")
	b.ReportMetric(float64(tc.Nanoseconds())/1000, "call-mtls-us")
	b.ReportMetric(float64(tc)/float64(pc), "call-x-plain")
	b.ReportMetric(float64(ps.Microseconds())/1000, "start-plain-ms")
	b.ReportMetric(float64(ts.Microseconds())/1000, "start-mtls-ms")
	b.ReportMetric(float64(ts)/float64(ps), "start-x-plain")
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
