package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/guntainer/playground/internal/testenv"
	"github.com/guntainer/playground/runtime"
	"github.com/rs/zerolog"
)

// TestMain makes the test binary the containers' init too (the Debian
// and figure tests start containers), serves as the second process of
// the cache-lock test, and fails the run on leaked goroutines.
func TestMain(m *testing.M) {
	runtime.MaybeInit()
	if os.Getenv("PLAYGROUND_IMAGE_TEST_HELPER") == "prepare" {
		os.Exit(helperPrepare())
	}
	before := len(testenv.Goroutines())
	code := m.Run()
	if stateDir != "" {
		_ = os.RemoveAll(filepath.Dir(stateDir)) // the containers' mount points, all gone by now
	}
	if code == 0 {
		if err := testenv.CheckGoroutines(before); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// helperPrepare prepares ubuntu:24.04 from the test server named in the
// environment, printing each phase it passes and then the tree's
// directory, as one of two processes sharing a cache.
func helperPrepare() int {
	c, err := OpenCache(os.Getenv("HELPER_CACHE"), zerolog.Nop())
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	c.Releases = []Release{{Version: "24.04", Point: "24.04.3", Arch: c.Arch, URL: os.Getenv("HELPER_URL"), SHA256: os.Getenv("HELPER_SHA256")}}
	src, _ := ParseSource("ubuntu")
	img, err := c.Prepare(context.Background(), src, func(p Progress) { fmt.Println("phase", p.Phase) })
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer img.Close()
	fmt.Println("dir", img.Dir, unpacks.Load())
	return 0
}
