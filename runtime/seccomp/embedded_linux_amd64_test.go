package seccomp

import (
	"bytes"
	"os"
	"testing"

	"github.com/guntainer/playground/runtime/seccomp/filter"
)

// TestEmbeddedFilterIsCurrent: the program the runtime installs on amd64
// is the one committed beside package filter; it must be what Compile
// makes now.
func TestEmbeddedFilterIsCurrent(t *testing.T) {
	f, err := Compile()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PLAYGROUND_UPDATE_PROFILE") == "1" {
		if err := os.WriteFile("filter/filter_amd64.bpf", f.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	e, err := filter.Embedded()
	if err != nil {
		t.Fatalf("the committed filter: %v (PLAYGROUND_UPDATE_PROFILE=1 go test ./runtime/seccomp writes it)", err)
	}
	if !bytes.Equal(e.Bytes(), f.Bytes()) {
		t.Errorf("filter/filter_amd64.bpf is stale (%d instructions, Compile makes %d): PLAYGROUND_UPDATE_PROFILE=1 go test ./runtime/seccomp", len(e), len(f))
	}
}
