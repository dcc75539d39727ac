package runtime

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAddSealsWaitsOutEBUSY: a seal the kernel refuses with EBUSY for a
// while (here a writable shared mapping, gone after 30 ms) is added once
// it can be; one that stays refused fails with EBUSY, in bounded time.
func TestAddSealsWaitsOutEBUSY(t *testing.T) {
	memfd := func() (*os.File, []byte) {
		fd, err := unix.MemfdCreate("seal-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "memfd:seal-test")
		t.Cleanup(func() { _ = f.Close() })
		if err := f.Truncate(4096); err != nil {
			t.Fatal(err)
		}
		m, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		return f, m
	}

	f, m := memfd()
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("F_SEAL_WRITE beside a writable shared mapping: %v, want EBUSY (the case this test makes)", err)
	}
	unmapped := make(chan error, 1)
	go func() {
		time.Sleep(30 * time.Millisecond)
		unmapped <- unix.Munmap(m)
	}()
	if err := addSeals(f, unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		t.Fatalf("addSeals once the mapping went: %v", err)
	}
	if err := <-unmapped; err != nil {
		t.Fatal(err)
	}
	got, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || got&(unix.F_SEAL_WRITE|unix.F_SEAL_SEAL) != unix.F_SEAL_WRITE|unix.F_SEAL_SEAL {
		t.Errorf("seals %#x, %v; want write and seal", got, err)
	}

	f, m = memfd()
	defer func() { _ = unix.Munmap(m) }()
	t0 := time.Now()
	err = addSeals(f, unix.F_SEAL_WRITE)
	if !errors.Is(err, unix.EBUSY) {
		t.Errorf("addSeals beside a mapping that stays: %v, want EBUSY", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("addSeals gave up after %v", d)
	}
}
