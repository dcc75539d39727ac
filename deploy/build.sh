#!/bin/sh
# deploy/build.sh OUT [VERSION [PACKAGE]]
# deploy/build.sh -test OUT PACKAGE
#
# The release build of the playground server, as deploy/Dockerfile makes
# it: one static binary at OUT that embeds the small init binary
# (runtime/cmd/playground-init) and executes every container's init from a
# sealed copy of it in memory instead of re-executing itself; init reaches
# its first line with about half the CPU time and page faults, a cold
# session's first answer comes about 5 ms sooner (docs/DESIGN.md). Both
# are built with one build stamp, a hash of the module's Go sources; the
# server executes the init it embeds once at start and refuses to start
# if the stamps differ. `go build ./cmd/playground` and `go run
# ./cmd/playground` stay as they are: no init embedded, the server
# re-executes itself.
#
# PACKAGE is another main package to build so (the load command, for
# BENCHMARKS.md). -test builds PACKAGE's test binary so instead (CI runs
# the runtime's posture and escape tests with the embedded init).
#
# The source tree is not written: the init binary reaches the build
# through -overlay. GOFLAGS and the go command's other variables apply.
set -eu
test=
if [ "${1:-}" = -test ]; then
	test=1
	shift
fi
out=${1:-}
if [ -z "$out" ] || { [ -n "$test" ] && [ -z "${2:-}" ]; }; then
	echo "usage: deploy/build.sh OUT [VERSION [PACKAGE]]" >&2
	echo "       deploy/build.sh -test OUT PACKAGE" >&2
	exit 2
fi
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/.."
root=$PWD
go=${GO:-go}

stamp=$(find . \( -path ./web/node_modules -o -path ./.git \) -prune -o -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print |
	LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stampflag="-X github.com/guntainer/playground/runtime/internal/initproc.BuildStamp=$stamp"
export CGO_ENABLED=0
"$go" build -trimpath -ldflags "-s -w $stampflag" -o "$tmp/playground-init" ./runtime/cmd/playground-init
printf '{"Replace":{"%s":"%s"}}\n' "$root/runtime/initbin/playground-init" "$tmp/playground-init" >"$tmp/overlay.json"
embed="-tags playground_embedinit -overlay $tmp/overlay.json"
if [ -n "$test" ]; then
	# Not -trimpath: the tests find the module's source by their own path.
	"$go" test -c $embed -ldflags "$stampflag" -o "$out" "$2"
else
	"$go" build -trimpath $embed -ldflags "-s -w $stampflag -X main.version=${2:-dev}" -o "$out" "${3:-./cmd/playground}"
fi
