package deploy

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"sigs.k8s.io/yaml"

	"github.com/guntainer/playground/internal/testenv"
)

// pendingFlags are serve flags the deploy files use that other issues
// add to the server; while a server lacks one, the test says which.
var pendingFlags = map[string]string{
	"drain-timeout":   "issue 8 (sessions): the drain on SIGTERM",
	"allowed-host":    "issue 8 (sessions): the Host check against DNS rebinding",
	"trusted-proxies": "issue 8 (sessions): X-Forwarded-For from the proxy",
}

// shippedServeCommands are the `playground serve` command lines the
// deploy files start, by where.
func shippedServeCommands(t *testing.T) map[string][]string {
	t.Helper()
	cmds := map[string][]string{}
	exec := strings.Fields(unitSettings(t)["ExecStart"])
	cmds["systemd/playground.service ExecStart"] = exec[1:]
	for _, st := range parseDockerfile(t, "deploy/Dockerfile", readShipped(t, "Dockerfile")) {
		for _, c := range st.Commands {
			if c, ok := c.(*instructions.CmdCommand); ok {
				cmds["Dockerfile CMD"] = c.CmdLine
			}
		}
	}
	var c composeFile
	if err := yaml.UnmarshalStrict(readShipped(t, "docker/compose.yaml"), &c); err != nil {
		t.Fatal(err)
	}
	cmds["docker/compose.yaml command"] = c.Services["playground"].Command
	for _, dir := range []string{"base", "overlays/example"} {
		cmds["kubernetes/"+dir+" StatefulSet args"] = build(t, dir).statefulSet.Spec.Template.Spec.Containers[0].Args
	}
	return cmds
}

// TestShippedCommandsUseRealFlags: every flag the deploy files give the
// server is one `playground serve --help` lists.
func TestShippedCommandsUseRealFlags(t *testing.T) {
	known := serveFlags(t, playgroundBinary(t))
	var pending []string
	for where, args := range shippedServeCommands(t) {
		if len(args) == 0 || args[0] != "serve" {
			t.Errorf("%s: %q does not start with serve", where, args)
			continue
		}
		for _, a := range args[1:] {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch {
			case !strings.HasPrefix(a, "--") || !strings.Contains(a, "="):
				t.Errorf("%s: %q: write flags as --name=value, one argument each", where, a)
			case known[name]:
			case pendingFlags[name] != "":
				pending = append(pending, where+": --"+name+" needs "+pendingFlags[name])
			default:
				t.Errorf("%s: --%s is not a flag of playground serve", where, name)
			}
		}
	}
	if len(pending) > 0 && !t.Failed() {
		testenv.Skipf(t, "flags the server does not have yet:\n%s", strings.Join(pending, "\n"))
	}
}
