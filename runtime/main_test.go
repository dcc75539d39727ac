package runtime

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	MaybeInit() // this test binary is also the containers' init
	os.Exit(m.Run())
}
