package fairshare

import (
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct{ kind, config, err string }{
		{PolicyQuota, `{}`, ""},
		{PolicyQuota, `{"starvation_timeout":"30s","max_hold":"2m"}`, ""},
		{PolicyQuota, `{"starvation_timeout":"soon"}`, `"starvation_timeout"`},
		{PolicyQuota, `{"max_hold":"-1s"}`, `"max_hold"`},
		{PolicyQuota, `{"scarce_resources":[""]}`, `"scarce_resources"`},
		{PolicyQuota, `{"bogus":true}`, `"bogus"`},
		{PolicyQuota, `{"preemption":true}`, `"preemption"`}, // the priority policy's
		{PolicyPriority, `{"starvation_timeout":"soon"}`, `"starvation_timeout"`},
		{PolicyPriority, `{"bogus":true}`, `"bogus"`},
		{PolicyPriority, `{"preemption":true}`, ""},
		{PolicyPriority, `{"preemption":"yes"}`, `"preemption"`},
	} {
		_, err := ParseOptions(tc.kind, []byte(tc.config))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseOptions(%s, %s) = %v, want error containing %q", tc.kind, tc.config, err, tc.err)
		}
	}
}
