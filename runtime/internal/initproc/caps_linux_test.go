package initproc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
)

// TestCapabilityTableInREADME: README.md's table of capabilities says of
// each of docker's defaults what the code does: kept (keptCaps, the sets
// the live-container tests check in /proc) or dropped (droppedCaps), and
// names no other as kept.
func TestCapabilityTableInREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.SourceRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	said := map[string]string{} // capability name → kept or dropped
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 4 || (strings.TrimSpace(f[2]) != "kept" && strings.TrimSpace(f[2]) != "dropped") {
			continue
		}
		for name := range strings.SplitSeq(f[1], ",") {
			said[strings.TrimSpace(name)] = strings.TrimSpace(f[2])
		}
	}
	var kept []string
	for _, k := range keptCaps {
		name := strings.ToUpper(k.cap.String())
		kept = append(kept, name)
		if said[name] != "kept" {
			t.Errorf("README.md says %s is %q; the code keeps it (%s)", name, said[name], k.why)
		}
	}
	for _, d := range droppedCaps {
		name := strings.ToUpper(d.cap.String())
		if slices.Contains(kept, name) {
			t.Errorf("%s is both kept and dropped", name)
		}
		if said[name] != "dropped" {
			t.Errorf("README.md says %s is %q; the code drops it (%s)", name, said[name], d.why)
		}
	}
	for name, v := range said {
		if v == "kept" && !slices.Contains(kept, name) {
			t.Errorf("README.md says %s is kept; the code does not keep it", name)
		}
	}
	// docker's default set, which the two lists account for between them.
	if n := len(keptCaps) + len(droppedCaps); n != 14 {
		t.Errorf("kept and dropped name %d capabilities, docker's default has 14", n)
	}
}
