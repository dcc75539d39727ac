// Command gen writes the generated deploy files: go run ./deploy/gen
// (from the repository's root). The deploy package's tests fail when a
// committed file differs from what this writes.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/guntainer/playground/deploy"
)

func main() {
	dir := flag.String("dir", "deploy", "the deploy `directory` to write into")
	flag.Parse()
	files, err := deploy.Generated()
	if err == nil {
		err = deploy.WriteFiles(*dir, files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
