#!/bin/sh
# Regenerates BENCHMARKS.md at the top of the repository: every target this
# machine has, every measurement, full sizes. Extra flags go to the command
# (e.g. --ttyd /path/to/ttyd). Takes a few minutes; run it on an idle
# machine. The file is written even when a measurement failed (the report
# says which), and the exit status is the command's.
set -eu
cd "$(dirname "$0")/../.."
status=0
# Static, as the release is built (deploy/Dockerfile): the load command's
# binary is also its servers' and their containers' init, and a cgo build
# starts each init through the dynamic loader.
CGO_ENABLED=0 go run ./cmd/playground-load --all --markdown "$@" >BENCHMARKS.md.tmp || status=$?
if [ -s BENCHMARKS.md.tmp ]; then
	mv BENCHMARKS.md.tmp BENCHMARKS.md
else
	rm -f BENCHMARKS.md.tmp
fi
exit "$status"
