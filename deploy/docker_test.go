package deploy

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"sigs.k8s.io/yaml"
)

// parseDockerfile parses a Dockerfile with BuildKit's own parser, down to
// its typed instructions, as `docker build` would before building.
func parseDockerfile(t *testing.T, name string, src []byte) []instructions.Stage {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: %s", name, w.Short)
	}
	stages, _, err := instructions.Parse(res.AST)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return stages
}

// TestDockerfile: the production Dockerfile parses; it builds a static
// binary in one stage and runs it as an ordinary user in the next, with
// the serve flags the server knows.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "deploy/Dockerfile", readShipped(t, "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("%d stages, want build and run", len(stages))
	}
	var build, user string
	var cmd, entry []string
	for _, c := range stages[0].Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "deploy/build.sh") {
			build = strings.Join(r.CmdLine, " ")
		}
	}
	for _, c := range stages[1].Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CmdCommand:
			cmd = c.CmdLine
		case *instructions.EntrypointCommand:
			entry = c.CmdLine
		}
	}
	// The release build: the script builds ./cmd/playground static
	// (CGO_ENABLED=0) with the embedded init; the deploy tests' server is
	// built by it too (playgroundBinary), so what they test is what ships.
	if !strings.HasPrefix(build, "sh deploy/build.sh /out/playground") {
		t.Errorf("the build stage's build is %q: want sh deploy/build.sh /out/playground", build)
	}
	script := readFile(t, repoRoot(t)+"/deploy/build.sh")
	for _, want := range []string{"export CGO_ENABLED=0", "-tags playground_embedinit", "./cmd/playground}"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("deploy/build.sh does not say %q", want)
		}
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("USER %q: want an ordinary user", user)
	}
	if !slices.Equal(entry, []string{"/usr/local/bin/playground"}) || len(cmd) == 0 || cmd[0] != "serve" {
		t.Errorf("ENTRYPOINT %q CMD %q", entry, cmd)
	}
}

// TestDockerfileDev: the development image at the top parses.
func TestDockerfileDev(t *testing.T) {
	root := repoRoot(t)
	b := readFile(t, root+"/Dockerfile.dev")
	parseDockerfile(t, "Dockerfile.dev", b)
}

// composeFile holds the compose file's fields the deployment uses; it
// decodes strictly, so a misspelt key fails.
type composeFile struct {
	Name     string `json:"name"`
	Services map[string]struct {
		Build struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
		Image           string   `json:"image"`
		Init            *bool    `json:"init"`
		Restart         string   `json:"restart"`
		Ports           []string `json:"ports"`
		Command         []string `json:"command"`
		StopGracePeriod string   `json:"stop_grace_period"`
		SecurityOpt     []string `json:"security_opt"`
		CapDrop         []string `json:"cap_drop"`
		ReadOnly        bool     `json:"read_only"`
		Tmpfs           []string `json:"tmpfs"`
		Volumes         []string `json:"volumes"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

// TestComposeFile: the compose file decodes strictly and carries the
// flags docs/DEPLOY.md names: the shipped seccomp profile, AppArmor and
// masked paths off, no capabilities, and a stop grace past the drain.
func TestComposeFile(t *testing.T) {
	var c composeFile
	if err := yaml.UnmarshalStrict(readShipped(t, "docker/compose.yaml"), &c); err != nil {
		t.Fatal(err)
	}
	s, ok := c.Services["playground"]
	if !ok {
		t.Fatal("no service playground")
	}
	for _, want := range []string{"seccomp=../seccomp/playground.json", "apparmor=unconfined", "systempaths=unconfined"} {
		if !slices.Contains(s.SecurityOpt, want) {
			t.Errorf("security_opt lacks %s: %v", want, s.SecurityOpt)
		}
	}
	if !slices.Equal(s.CapDrop, []string{"ALL"}) || !s.ReadOnly {
		t.Errorf("cap_drop %v, read_only %v", s.CapDrop, s.ReadOnly)
	}
	if s.Build.Dockerfile != "deploy/Dockerfile" || s.Build.Context != "../.." {
		t.Errorf("build %+v", s.Build)
	}
	drain, _ := argValue(s.Command, "drain-timeout")
	if drain == "" || s.StopGracePeriod == "" {
		t.Errorf("stop_grace_period %q for --drain-timeout %q", s.StopGracePeriod, drain)
	}
}
