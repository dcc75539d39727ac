package deploy

import (
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/guntainer/playground/internal/testenv"
)

// BenchmarkServerStartToReady measures what a pod waits for between its
// server's start and its first "ready": the process's exec to the first
// 200 from /readyz (or /healthz, on a server without /readyz yet, which
// starts serving only once a container has started and stopped). Beside
// it, from the same run, the bare exec of the same binary (`playground
// version`): the floor any start pays.
//
//	go test -run '^$' -bench StartToReady -benchtime 20x ./deploy
func BenchmarkServerStartToReady(b *testing.B) {
	bin := playgroundBinary(b)
	b.Run("exec-only", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
	b.Run("host-rootfs", func(b *testing.B) { benchReady(b, bin, "host") })
	b.Run("cached-image", func(b *testing.B) {
		// A root file system already unpacked in the cache, as a pod's
		// second start or a pre-pulled image volume finds it.
		benchReady(b, bin, testenv.DebianRootfs(b))
	})
}

func benchReady(b *testing.B, bin, rootfs string) {
	path := "/readyz"
	for b.Loop() {
		b.StopTimer()
		state := stateDir(b)
		addr := freePort(b)
		cmd := exec.Command(bin, "serve", "--listen="+addr, "--rootfs="+rootfs, "--state-dir="+state, "--log-format=json")
		b.StartTimer()
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusNotFound && path == "/readyz" {
					path = "/healthz" // a server without /readyz
					continue
				}
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Since(t0) > 60*time.Second {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				b.Fatalf("%s not ready within 60 s", rootfs)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		_ = cmd.Process.Signal(sigterm) // ends it; Wait reports how
		_ = cmd.Wait()
		b.StartTimer()
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/ready")
}
