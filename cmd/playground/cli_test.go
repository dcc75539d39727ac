package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// result is how a `playground` command line ended.
type result struct {
	stdout, stderr string
	code           int
}

// runCommand runs cmd to its end (failing after a while) and returns its
// output and exit code.
func runCommand(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not end; stderr so far:\n%s", cmd.Args, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// TestUsageErrors: a wrong command, flag or value is one line on stderr
// that says where help is, exit code 2, and nothing started: no state dir,
// no cache, no container check (serve's "containers work" never comes).
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `playground: unknown command "frobnicate" (see 'playground --help')`},
		{"unknown flag", []string{"--no-such-flag"}, "playground: flag provided but not defined: -no-such-flag (see 'playground serve --help')"},
		{"unknown serve flag", []string{"serve", "--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{"unknown run flag", []string{"run", "--nope", "id"}, "playground: flag provided but not defined: -nope (see 'playground run --help')"},
		{"unknown rootfs flag", []string{"rootfs", "pull", "--nope"}, "flag provided but not defined: -nope (see 'playground rootfs pull --help')"},
		{"flag without value", []string{"run", "--rootfs"}, "flag needs an argument: -rootfs"},
		{"listen nonsense", []string{"--listen", "nonsense"}, `--listen "nonsense": want HOST:PORT`},
		{"listen bad port", []string{"--listen", "127.0.0.1:99999"}, `port "99999": want a number from 0 to 65535`},
		{"listen bad host", []string{"--listen", "no_such host:80"}, `is neither an IP address nor a host name`},
		{"bad log format", []string{"--log-format", "xml"}, `--log-format "xml": want auto, json or console`},
		{"bad warm", []string{"--warm", "-1"}, "--warm must be 0 to 1000"},
		{"two bad values", []string{"--warm", "-1", "--listen", ""}, "--listen is empty"},
		{"serve arguments", []string{"serve", "extra"}, "serve takes no arguments"},
		{"bad env", []string{"run", "--env", "NOEQUALS", "id"}, `--env "NOEQUALS": want NAME=VALUE (see 'playground run --help')`},
		{"bad size", []string{"run", "--writable-size", "lots", "id"}, "want a size such as 256M"},
		{"bad user", []string{"run", "--user", "bob", "id"}, `--user "bob": want UID or UID:GID, in numbers`},
		{"bad stop timeout", []string{"run", "--stop-timeout", "-1s", "id"}, "--stop-timeout must not be negative"},
		{"bad rootfs source", []string{"run", "--rootfs", "BAD=ubuntu", "id"}, `environment name "BAD"`},
		{"bad rootfs scheme", []string{"run", "--rootfs", "ftp://x", "id"}, "unknown scheme"},
		{"rootfs without command", []string{"rootfs"}, "rootfs needs a command"},
		{"rootfs unknown command", []string{"rootfs", "frob"}, `rootfs: unknown command "frob"`},
		{"version arguments", []string{"version", "extra"}, "version takes no arguments"},
		{"help for nothing", []string{"help", "frob"}, `help: unknown command "frob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := playground(t, tt.args...)
			r := runCommand(t, cmd)
			if r.code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", r.code, r.stderr)
			}
			if lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(r.stderr, "playground: ") || !strings.Contains(r.stderr, "--help") {
				t.Errorf("stderr: want one line 'playground: ... --help ...', got\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr: want %q in\n%s", tt.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: want nothing, got\n%s", r.stdout)
			}
			for _, v := range []string{"PLAYGROUND_STATE_DIR", "PLAYGROUND_CACHE"} {
				if _, err := os.Stat(envOf(cmd, v)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s %s: %v; want it not made", v, envOf(cmd, v), err)
				}
			}
		})
	}
}

// TestCommandLineFailures: what fails once started is one line too, exit
// code 1 (or a shell's 126/127 for run's program), never a panic.
func TestCommandLineFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"missing rootfs", []string{"run", "--rootfs", "/no/such/dir", "id"}, 1, "playground: rootfs: stat /no/such/dir: no such file or directory"},
		{"serve missing rootfs", []string{"--rootfs", "/no/such/dir", "--listen", "127.0.0.1:0"}, 1, "rootfs: stat /no/such/dir: no such file or directory"},
		{"rootfs without a shell", []string{"run", "--rootfs", emptyDir(t)}, 1, "find a shell: the rootfs has neither /bin/bash nor /bin/sh"},
		{"program not found", []string{"run", "--", "no-such-program"}, 127, "playground: exec no-such-program: executable file not found in $PATH"},
		{"program not executable", []string{"run", "--", "/etc/passwd"}, 126, "playground: exec /etc/passwd: permission denied"},
		{"program is a directory", []string{"run", "--", "/usr"}, 126, "playground: exec /usr: is a directory"},
		{"missing working directory", []string{"run", "--workdir", "/no/such", "--", "true"}, 1, "playground: working directory /no/such: no such file or directory"},
		{"listen in use", []string{"--listen", busy.Addr().String()}, 1, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCommand(t, playground(t, tt.args...))
			if r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr: want %q in\n%s", tt.wantErr, r.stderr)
			}
			last := strings.TrimSpace(r.stderr)
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				last = last[i+1:] // serve logs before it fails
			}
			if !strings.Contains(last, tt.wantErr) || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("stderr: want the error as its last line, and no panic:\n%s", r.stderr)
			}
		})
	}
}

func emptyDir(t *testing.T) string {
	d := t.TempDir()
	_ = os.Chmod(d, 0o755)
	_ = os.Chmod(filepath.Dir(d), 0o755)
	return d
}

// TestHelp: the top help lists every command; each command's help, asked
// either way, is its usage; help goes to stdout and exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "help"}} {
		r := runCommand(t, playground(t, args...))
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		for _, want := range []string{"playground [serve] [flags]", "playground run ", "playground rootfs ", "playground version", "playground help", "127 not found"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%v: want %q in\n%s", args, want, r.stdout)
			}
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--help"}, "Usage: playground [serve] [flags]"},
		{[]string{"help", "serve"}, "-listen address"},
		{[]string{"--listen", ":0", "--help"}, "Usage: playground [serve] [flags]"},
		{[]string{"run", "--help"}, "Usage: playground run [flags]"},
		{[]string{"help", "run"}, "-stop-timeout duration"},
		{[]string{"rootfs", "--help"}, "Usage: playground rootfs COMMAND"},
		{[]string{"help", "rootfs"}, "Usage: playground rootfs COMMAND"},
		{[]string{"rootfs", "pull", "--help"}, "-cache directory"},
		{[]string{"version", "--help"}, "Usage: playground version"},
		{[]string{"help", "version"}, "Usage: playground version"},
	} {
		r := runCommand(t, playground(t, tt.args...))
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q in stdout:\n%s", tt.args, r.code, r.stderr, tt.want, r.stdout)
		}
	}
}
