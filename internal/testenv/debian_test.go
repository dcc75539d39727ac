package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebianRootfs(t *testing.T) {
	if testing.Short() {
		Skipf(t, "makes or unpacks a 200 MB rootfs: left out under -short")
	}
	root := DebianRootfs(t)
	b, err := os.ReadFile(filepath.Join(root, "etc/os-release"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "bookworm") {
		t.Fatalf("os-release: %s", b)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/apt-get")); err != nil {
		t.Fatal(err)
	}
}
