#!/bin/sh
# Regenerates BENCHMARKS.md at the top of the repository: every target this
# machine has, every measurement, full sizes. Extra flags go to the command
# (e.g. --ttyd /path/to/ttyd). Takes a few minutes; run it on an idle
# machine. The file is written even when a measurement failed (the report
# says which), and the exit status is the command's.
set -eu
cd "$(dirname "$0")/../.."
status=0
# Built as the release is (deploy/build.sh, which deploy/Dockerfile runs):
# static, for the load command's binary is also its servers', and with the
# small init binary embedded, which the self, warm and rlimits targets'
# containers' inits are executed from. Five rounds of the burst, the
# throughput and the echo, not the command's default three: on a 2-vCPU
# guest one round moves far from the next, and the median of three with it.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh deploy/build.sh "$tmp/playground-load" dev ./cmd/playground-load
"$tmp/playground-load" --all --rounds 5 --markdown "$@" >BENCHMARKS.md.tmp || status=$?
if [ -s BENCHMARKS.md.tmp ]; then
	mv BENCHMARKS.md.tmp BENCHMARKS.md
else
	rm -f BENCHMARKS.md.tmp
fi
exit "$status"
