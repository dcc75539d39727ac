package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestInitEnteredEarly runs this binary as a container's init would start
// (argv[0] playground-init; not PID 1, so init refuses at once) with
// GODEBUG=inittrace=1, and checks which of the server's packages Go
// initialised before init was entered: none of the costly ones (the
// metrics library's protobuf types, net, regexp), whose initialisation
// every container start would otherwise pay for (see package initproc). Importing path/filepath or runtime/debug into
// initproc put it after protobuf's; net/netip or os/exec, after net.
func TestInitEnteredEarly(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: exe, Args: []string{"playground-init"}, Env: []string{"GODEBUG=inittrace=1"}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "not for direct use") {
		t.Fatalf("playground-init outside a container: %v; want exit status 2 and the refusal\n%s", err, stderr.String())
	}
	var before []string
	for line := range strings.Lines(stderr.String()) {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "init" && strings.HasPrefix(f[2], "@") {
			before = append(before, f[1])
		}
	}
	t.Logf("%d packages initialised before init was entered", len(before))
	// The costly ones (GODEBUG=inittrace=1 of the server's binary), and
	// every package of ours but the seccomp filter initproc imports.
	late := []string{"net", "net/netip", "regexp/syntax", "google.golang.org/protobuf/internal/filedesc",
		"google.golang.org/protobuf/internal/impl", "github.com/prometheus/", "github.com/opencontainers/go-digest",
		"github.com/guntainer/playground/"}
	for _, p := range before {
		for _, l := range late {
			if (p == l || strings.HasSuffix(l, "/") && strings.HasPrefix(p, l)) && p != "github.com/guntainer/playground/runtime/seccomp/filter" {
				t.Errorf("%s was initialised before the container's init was entered", p)
			}
		}
	}
}
