//go:build race

package runtime

// raceDataOverhead is what a binary built with the race detector adds to
// RLIMIT_DATA (see RlimitsFor): its runtime maps some 300 MiB at start
// and shadow memory for every heap it grows, so under the session's
// memory limit a container's init, which is this binary, died when it
// grew its heap ("ThreadSanitizer failed to allocate", exit status 66:
// CI once, TestConnectStorm under go test -race). Only tests build so.
const raceDataOverhead = 4 << 30
