package posix

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"
)

// statLine builds a /proc/<pid>/stat line (52 fields) for comm with
// distinctive values in the fields ParseStat reads.
func statLine(pid, comm string) string {
	fields := []string{pid, "(" + comm + ")", "S", "41", "42", "43", "0", "-1", "4194560",
		"100", "0", "0", "0", "250", "75", "0", "0", "20", "0", "1", "0", "987654", "12345678", "321"}
	for len(fields) < 52 {
		fields = append(fields, "0")
	}
	return strings.Join(fields, " ") + "\n"
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		wantComm string
		wantErr  string
	}{
		{name: "plain", line: statLine("7", "sleep"), wantComm: "sleep"},
		{name: "spaces", line: statLine("7", "my task 1"), wantComm: "my task 1"},
		{name: "parens", line: statLine("7", "a) S 1 2 3 (b"), wantComm: "a) S 1 2 3 (b"},
		{name: "trailing paren", line: statLine("7", "x)"), wantComm: "x)"},
		{name: "empty comm", line: statLine("7", ""), wantComm: ""},
		{name: "no comm", line: "7 sleep S 1\n", wantErr: "no (comm)"},
		{name: "bad pid", line: statLine("x7", "sleep"), wantErr: "pid"},
		{name: "truncated", line: "7 (sleep) S 41 42 43 0\n", wantErr: "fields after comm"},
		{name: "bad number", line: strings.Replace(statLine("7", "sleep"), " 250 ", " 2x0 ", 1), wantErr: "field 14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ParseStat([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStat error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStat: %v", err)
			}
			want := Stat{Pid: 7, Comm: tt.wantComm, State: 'S', PPid: 41, Pgrp: 42, Session: 43,
				UTimeTicks: 250, STimeTicks: 75, StartTicks: 987654, RSSPages: 321}
			if *st != want {
				t.Errorf("ParseStat = %+v, want %+v", *st, want)
			}
		})
	}
}

func TestReadStatSelf(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatalf("ReadStat(self): %v", err)
	}
	if st.Pid != os.Getpid() || st.PPid != os.Getppid() || st.StartTicks == 0 || st.RSSBytes() == 0 {
		t.Errorf("ReadStat(self) = %+v: want our pid, ppid, a start time and resident memory", *st)
	}
	if _, err := ReadStat(1 << 30); err == nil {
		t.Error("ReadStat of a pid above pid_max succeeded")
	}
}

func TestClockTicksFromAuxv(t *testing.T) {
	word := strconv.IntSize / 8
	auxv := func(pairs ...uint64) []byte {
		b := make([]byte, len(pairs)*word)
		for i, v := range pairs {
			if word == 4 {
				binary.NativeEndian.PutUint32(b[i*word:], uint32(v))
			} else {
				binary.NativeEndian.PutUint64(b[i*word:], v)
			}
		}
		return b
	}
	tests := []struct {
		name string
		auxv []byte
		want uint64
	}{
		{"present", auxv(6, 4096, atClkTck, 250, 0, 0), 250},
		{"absent", auxv(6, 4096, 0, 0), 0},
		{"after terminator", auxv(0, 0, atClkTck, 250), 0},
		{"truncated", auxv(6, 4096, atClkTck)[:3*word], 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clockTicksFromAuxv(tt.auxv); got != tt.want {
				t.Errorf("clockTicksFromAuxv = %d, want %d", got, tt.want)
			}
		})
	}
	// Linux fixes USER_HZ at 100 on the architectures Go runs on; the real
	// auxv must say so.
	if hz := ClockTicks(); hz != 100 {
		t.Errorf("ClockTicks() = %d, want 100", hz)
	}
}

func TestParseRlimitValue(t *testing.T) {
	tests := []struct {
		in        string
		soft, hrd uint64
		wantErr   string
	}{
		{in: "1024", soft: 1024, hrd: 1024},
		{in: "100:200", soft: 100, hrd: 200},
		{in: " 100 : 200 ", soft: 100, hrd: 200},
		{in: "unlimited", soft: Unlimited, hrd: Unlimited},
		{in: "10:unlimited", soft: 10, hrd: Unlimited},
		{in: "unlimited:10", wantErr: "exceeds hard"},
		{in: "200:100", wantErr: "exceeds hard"},
		{in: "", wantErr: "not a number"},
		{in: "-1", wantErr: "not a number"},
		{in: "1k", wantErr: "not a number"},
		{in: "1:2:3", wantErr: "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			soft, hard, err := ParseRlimitValue(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRlimitValue(%q) = %d, %d, %v; want error containing %q", tt.in, soft, hard, err, tt.wantErr)
				}
				return
			}
			if err != nil || soft != tt.soft || hard != tt.hrd {
				t.Errorf("ParseRlimitValue(%q) = %d, %d, %v; want %d, %d", tt.in, soft, hard, err, tt.soft, tt.hrd)
			}
		})
	}
}

func TestRlimitResource(t *testing.T) {
	for _, name := range RlimitNames() {
		if _, err := RlimitResource(name); err != nil {
			t.Errorf("RlimitResource(%q): %v", name, err)
		}
	}
	if len(RlimitNames()) != 8 {
		t.Errorf("RlimitNames() = %v, want the 8 names of the isolator contract", RlimitNames())
	}
	if _, err := RlimitResource("nofiles"); err == nil || !strings.Contains(err.Error(), `"nofiles"`) {
		t.Errorf("RlimitResource(nofiles) error = %v, want one naming it", err)
	}
}
