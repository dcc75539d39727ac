package runtime

import (
	"math"
	goruntime "runtime"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string
	}{
		{"512M", 512 << 20, ""}, {"512MiB", 512 << 20, ""}, {"512mb", 512 << 20, ""}, {"1G", 1 << 30, ""},
		{"1.5G", 3 << 29, ""}, {"100", 100, ""}, {"100B", 100, ""}, {"64k", 64 << 10, ""}, {"2T", 2 << 40, ""},
		{"none", NoLimit, ""}, {"-1", NoLimit, ""},
		{"", 0, "not a number"}, {"M", 0, "not a number"}, {"12X", 0, "not a number"}, {"1Q", 0, "not a number"},
		{"5P", 0, "not a number"}, {"-5M", 0, "negative"}, {"9999999T", 0, "too large"}, {"1IB", 0, "unknown unit"},
	} {
		got, err := ParseSize(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSize(%q): got %d, %v; want an error saying %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q): -want %d +got %d, %v", tt.in, tt.want, got, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "1.5G", "none", "1e3K", "-0", "NaN", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 0 && n != NoLimit {
			t.Errorf("ParseSize(%q) = %d: negative without an error", s, n)
		}
	})
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{512 << 20: "512 MiB", 1 << 30: "1 GiB", 3 << 29: "1.5 GiB", 100: "100 bytes", 64 << 10: "64 KiB", 2 << 40: "2 TiB"} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d): -want %q +got %q", in, want, got)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	ncpu := float64(goruntime.NumCPU())
	for _, tt := range []struct {
		name string
		l    Limits
		err  string
	}{
		{"zero is the defaults", Limits{}, ""},
		{"defaults", DefaultLimits(), ""},
		{"no limits", Limits{Memory: NoLimit, Pids: NoLimit, CPUs: NoLimit, Ptys: NoLimit}, ""},
		{"tiny memory", Limits{Memory: 1 << 20}, "memory 1 MiB: below the minimum of 32 MiB"},
		{"negative memory", Limits{Memory: -5}, "negative"},
		{"few pids", Limits{Pids: 2}, "pids 2: below the minimum of 16"},
		{"too many cpus", Limits{CPUs: ncpu + 1}, "this machine has only"},
		{"tiny cpus", Limits{CPUs: 0.001}, "the range is 0.01"},
		{"NaN cpus", Limits{CPUs: math.NaN()}, "not a number"},
		{"tiny disk", Limits{Disk: 1 << 20}, "disk 1 MiB: below the minimum of 8 MiB"},
		{"no disk limit", Limits{Disk: NoLimit}, "disk"},
		{"few files", Limits{NoFile: 3}, "nofile 3"},
		{"two at once", Limits{Pids: 2, NoFile: 3}, "nofile 3"},
		{"negative ptys", Limits{Ptys: -2}, "ptys -2: negative"},
		{"too many ptys", Limits{Ptys: 1<<20 + 1}, "ptys 1048577: above the kernel's most"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("Validate(%+v): got %v, want %q", tt.l, err, tt.err)
			}
		})
	}
	d := Limits{}.WithDefaults()
	if d != DefaultLimits() || d.String() != "memory 512 MiB, pids 256, cpus 1, disk 1 GiB, nofile 4096, ptys 16" {
		t.Errorf("defaults: %+v %q", d, d.String())
	}
	if r := (Limits{Memory: 512 << 20}).MemoryReason(); r != "memory limit 512 MiB reached" {
		t.Errorf("MemoryReason: %q", r)
	}
	if r := (Limits{Pids: 256}).PidsReason(); r != "process limit 256 reached" {
		t.Errorf("PidsReason: %q", r)
	}
	if n := (Limits{Disk: 1 << 30}).DiskInodes(); n != 65536 {
		t.Errorf("DiskInodes of 1 GiB: %d", n)
	}
}

func TestLimitOf(t *testing.T) {
	l := Limits{Memory: 64 << 20, Pids: 50}
	for reason, want := range map[string]string{
		"memory limit 64 MiB reached":  "memory",
		"process limit 50 reached":     "pids",
		"":                             "",
		"idle timeout (30 min)":        "",
		"memory limit 512 MiB reached": "", // not this session's limit
	} {
		if got := l.limitOf(reason); got != want {
			t.Errorf("limitOf(%q) = %q, want %q", reason, got, want)
		}
	}
}
