package main

import (
	"fmt"
	"io"
	goruntime "runtime"
	"runtime/debug"
	"strings"
)

// version overrides the version Go embeds, when set at build time with
// -ldflags "-X main.version=v1.2.3" (a packager's own number).
var version = ""

const versionUsage = `Usage: playground version

Prints the version and what it was built from: the module version (v1.2.3
for 'go install ...@v1.2.3'; a pseudo-version for 'go build' in a git
checkout), the commit, its time and whether the tree had changes, and the
Go version. 'go run' embeds no version control information: it prints
"(devel)".
`

func versionMain(args []string, stdout io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(helpOut, versionUsage)
		return nil
	}
	if len(args) > 0 {
		return usagef("version takes no arguments, got %q (see 'playground version --help')", args)
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionString(version, info))
	return nil
}

// versionString is "playground VERSION (commit REV, TIME, modified; GO
// OS/ARCH)", from what Go embedded in the binary (info may be nil).
func versionString(override string, info *debug.BuildInfo) string {
	v := override
	if v == "" && info != nil {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	var vcs []string
	settings := map[string]string{}
	if info != nil {
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		vcs = append(vcs, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		vcs = append(vcs, t)
	}
	if settings["vcs.modified"] == "true" {
		vcs = append(vcs, "modified")
	}
	goVersion := goruntime.Version()
	if info != nil && info.GoVersion != "" {
		goVersion = info.GoVersion
	}
	built := goVersion + " " + goruntime.GOOS + "/" + goruntime.GOARCH
	if len(vcs) > 0 {
		return fmt.Sprintf("playground %s (%s; %s)", v, strings.Join(vcs, ", "), built)
	}
	return fmt.Sprintf("playground %s (%s)", v, built)
}
