package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
)

// TestAppArmorProfileCompiles: apparmor_parser (Debian's apparmor
// package) compiles the shipped profile without loading it (this
// machine's kernel has no AppArmor), and its name is the one the pod asks
// for. That it lets the server start containers on an AppArmor kernel is
// not tested here.
func TestAppArmorProfileCompiles(t *testing.T) {
	parser := testenv.NeedCommand(t, "apparmor_parser")
	features := "/usr/share/apparmor-features/features"
	if _, err := os.Stat(features); err != nil {
		testenv.Skipf(t, "no AppArmor feature set to compile against (Debian's apparmor package ships %s): %v", features, err)
	}
	prof := readShipped(t, "apparmor/playground")
	p := filepath.Join(t.TempDir(), "playground")
	if err := os.WriteFile(p, prof, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(parser, "-Q", "-K", "--features-file", features, "-I", "/etc/apparmor.d", p).CombinedOutput(); err != nil {
		t.Fatalf("apparmor_parser: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^profile (\S+) `).FindSubmatch(prof)
	ss := build(t, "base").statefulSet
	want := ss.Spec.Template.Spec.SecurityContext.AppArmorProfile
	if m == nil || want == nil || want.LocalhostProfile == nil || string(m[1]) != *want.LocalhostProfile {
		t.Errorf("profile name %q, the pod asks for %+v", m, want)
	}
}
