package detect

import (
	"runtime"
	"strings"
	"testing"

	"github.com/corral-project/corral/sdk/resources"
)

func TestParseMemTotalMiB(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     uint64
		wantErr  bool
	}{
		{"typical", "MemTotal:       16318252 kB\nMemFree:  1 kB\n", 15935, false},
		{"not first line", "Foo: 1 kB\nMemTotal: 2048 kB\n", 2, false},
		{"missing", "MemFree: 1 kB\n", 0, true},
		{"garbage", "MemTotal: lots kB\n", 0, true},
		{"odd unit", "MemTotal: 12 MB\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMemTotalMiB(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("got %d MiB, want %d", got, tc.want)
			}
		})
	}
}

func TestReserves(t *testing.T) {
	for _, tc := range []struct {
		total, mem, disk uint64
	}{
		{total: 0, mem: 0, disk: 0},
		{total: 1000, mem: 500, disk: 500},
		{total: 2048, mem: 1024, disk: 1024},
		{total: 16384, mem: 15360, disk: 11264},
	} {
		if got := MemAvailableMiB(tc.total); got != tc.mem {
			t.Errorf("MemAvailableMiB(%d) = %d, want %d", tc.total, got, tc.mem)
		}
		if got := DiskAvailableMiB(tc.total); got != tc.disk {
			t.Errorf("DiskAvailableMiB(%d) = %d, want %d", tc.total, got, tc.disk)
		}
	}
}

func TestDetect(t *testing.T) {
	r, err := Detect(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Scalar(resources.CPUs); got != float64(runtime.NumCPU()) {
		t.Errorf("cpus = %v, want %d", got, runtime.NumCPU())
	}
	if r.Scalar(resources.Mem) <= 0 || r.Scalar(resources.Disk) <= 0 {
		t.Errorf("mem/disk not detected: %s", r)
	}
	if got := r.Ranges(resources.Ports).String(); got != DefaultPorts.String() {
		t.Errorf("ports = %s, want %s", got, DefaultPorts)
	}
}

func TestOverride(t *testing.T) {
	detected := Build(8, 16384, 100000)
	for _, tc := range []struct {
		name, overrides, want string
	}{
		{"none", "", "cpus:8;mem:15360;disk:94880;ports:[31000-32000]"},
		{"scalar replaced not summed", "cpus:2", "cpus:2;mem:15360;disk:94880;ports:[31000-32000]"},
		{"ranges replaced", "ports:[5000-5010]", "cpus:8;mem:15360;disk:94880;ports:[5000-5010]"},
		{"new names added", "gpus:1;zones:{a,b}", "cpus:8;gpus:1;mem:15360;disk:94880;ports:[31000-32000];zones:{a,b}"},
		{"all", "cpus:1;mem:512;disk:1024;ports:[1-2]", "cpus:1;mem:512;disk:1024;ports:[1-2]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Override(detected, resources.MustParse(tc.overrides))
			if want := resources.MustParse(tc.want); !got.Equal(want) {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}
