package runtime

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkStart times runtime.Start to the program's first output: the
// container's part of a session's start, without the server.
func BenchmarkStart(b *testing.B) {
	spec := Spec{Args: []string{"/bin/sh", "-c", "echo ready"}, StateDir: testStateDir(b)}
	if err := Check(spec); err != nil {
		b.Fatalf("cannot start containers here: %v", err)
	}
	for b.Loop() {
		c, err := Start(spec)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 256)
		var out strings.Builder
		timer := time.AfterFunc(10*time.Second, func() { _ = c.Close() }) // the watchdog
		for !strings.Contains(out.String(), "ready") {
			n, err := c.Read(buf)
			if err != nil {
				b.Fatalf("read: %v; output so far %q", err, out.String())
			}
			out.Write(buf[:n])
		}
		timer.Stop()
		_ = c.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/start")
}
