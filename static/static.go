// Package static holds the built front end of the playground and serves it.
//
// index.html and assets/ are built from ../web with esbuild (web/build.mjs): the page's
// script and style sheet under content-hashed names, each beside its brotli (.br) and
// gzip (.gz) compressed copy. They are committed and embedded so `go run` needs no
// Node.js; rebuild with `npm --prefix web ci && npm --prefix web run build`.
// TestBundleFresh fails when the committed files no longer match what the sources build.
//
// Handler serves them with the headers the page needs: a strict Content-Security-Policy,
// no caching of index.html, a year's caching of the hashed assets, and the compressed
// copies to browsers that accept them.
package static

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
)

// Named as index.html and a directory, so that this file and its tests are not served.
//
//go:embed index.html assets
var files embed.FS

// FS returns the front end's files at their root: "index.html" and "assets/...".
// It is read-only and safe for concurrent use.
func FS() fs.FS { return files }

// handler is built once, when first asked for: the embedded files never
// change. Not at package initialisation, which every run of the binary
// pays, `playground run` and `--version` too: it reads and hashes every
// file (11 ms and 1.5 MB of allocations in GODEBUG=inittrace).
var handler = sync.OnceValue(func() http.Handler {
	h, err := NewHandler(files)
	if err != nil {
		// TestHandler builds it from the same files: only a broken build gets here.
		panic(fmt.Sprintf("static: the embedded page cannot be served: %v", err))
	}
	return h
})

// Handler serves the embedded page (see NewHandler). It is safe for concurrent use.
func Handler() http.Handler { return handler() }

// Serve is NewHandler for a server that gets its files from elsewhere (tests, another
// build): it never fails, and if fsys cannot be served every request gets a 500 that
// says why. The server mounts it at "GET /".
func Serve(fsys fs.FS) http.Handler {
	h, err := NewHandler(fsys)
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the page cannot be served: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return h
}
