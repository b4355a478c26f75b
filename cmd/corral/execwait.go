package main

// While corral exec waits for an offer, it says why nothing fits: the
// largest free resources of any agent against what the task asks, and it
// gives up at once when no agent could ever hold the task.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/corral-project/corral/core/master"
	"github.com/corral-project/corral/sdk/resources"
)

// How soon corral exec first explains a wait, and how often after that.
const (
	execFirstWaitReport = 2 * time.Second
	execWaitReportEvery = 15 * time.Second
)

// fitReport is what the master's state says about placing the task.
type fitReport struct {
	msg   string
	never bool // no registered agent could hold the task even when idle
}

// explainWait reads the master's state and explains why the task waits.
func explainWait(ctx context.Context, o *execOptions) (fitReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, _, err := fetchState(ctx, o.master)
	if err != nil {
		return fitReport{}, err
	}
	return whyNothingFits(st, o), nil
}

// whyNothingFits compares the task with every usable agent: connected, not
// draining, and offering the isolator --container asks for.
func whyNothingFits(st master.State, o *execOptions) fitReport {
	want := o.want()
	type cand struct {
		host        string
		total, free resources.Resources
	}
	var usable []cand
	skipped := map[string]int{}
	for _, a := range st.Agents {
		switch {
		case !a.Connected:
			skipped["disconnected"]++
			continue
		case a.Drain != "":
			skipped[a.Drain]++
			continue
		case o.container != "" && !hasIsolator(a.Attributes["isolators"], o.container):
			skipped["without isolator "+o.container]++
			continue
		}
		total, err1 := resources.Parse(a.Total)
		used, err2 := resources.Parse(a.Used)
		if err1 != nil || err2 != nil {
			continue
		}
		usable = append(usable, cand{a.Hostname, total, total.Subtract(used)})
	}
	note := skippedNote(skipped)
	if len(usable) == 0 {
		return fitReport{msg: fmt.Sprintf("waiting for an offer with %s: no usable agent registered%s", o.describe(), note)}
	}
	score := func(r resources.Resources) float64 { // how much of the ask r covers, summed over resources
		s := 0.0
		for k, v := range want {
			if v > 0 {
				s += min(r.Scalar(k)/v, 1)
			}
		}
		return s
	}
	sort.SliceStable(usable, func(i, j int) bool { return score(usable[i].free) > score(usable[j].free) })
	anyCouldFit := false
	for _, c := range usable {
		if fitsScalars(c.total, want) {
			anyCouldFit = true
		}
	}
	if !anyCouldFit {
		largest := usable[0]
		for _, c := range usable {
			if score(c.total) > score(largest.total) {
				largest = c
			}
		}
		return fitReport{never: true, msg: fmt.Sprintf("no agent can ever fit %s: the largest, %s, has %s in all (%d usable agents%s)",
			o.describe(), largest.host, largest.total, len(usable), note)}
	}
	best := usable[0]
	return fitReport{msg: fmt.Sprintf("still waiting for %s: the most free agent, %s, has %s free (%d usable agents%s)",
		o.describe(), best.host, orNone(best.free), len(usable), note)}
}

func fitsScalars(r resources.Resources, want map[string]float64) bool {
	for k, v := range want {
		if v > 0 && r.Scalar(k) < v {
			return false
		}
	}
	return true
}

func hasIsolator(list, name string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

func skippedNote(skipped map[string]int) string {
	var parts []string
	for why, n := range skipped {
		parts = append(parts, fmt.Sprintf("%d %s", n, why))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return ""
	}
	return "; not counting " + strings.Join(parts, ", ")
}

func orNone(r resources.Resources) string {
	if r.IsEmpty() {
		return "nothing"
	}
	return r.String()
}
