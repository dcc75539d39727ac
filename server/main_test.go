package server

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
	pgruntime "github.com/guntainer/playground/runtime"
)

// TestMain fails the run if goroutines outlive the tests: every session's
// pumps must be joined by the time its handler returns.
func TestMain(m *testing.M) {
	pgruntime.MaybeInit() // this test binary is also the containers' init
	before := len(testenv.Goroutines())
	code := m.Run()
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		if err := testenv.CheckGoroutines(before); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
