// Package static holds the built front end of the playground: index.html, written by
// hand, and app.js and app.css, built from ../web with esbuild. They are committed and
// embedded so `go run` needs no Node.js; rebuild with
// `npm --prefix web ci && npm --prefix web run build`. TestBundleFresh fails when the
// committed bundle no longer matches what the sources build.
package static

import (
	"embed"
	"io/fs"
)

// Named one by one, not as a pattern, so that this file and its test are not served.
//
//go:embed index.html app.js app.css
var files embed.FS

// FS returns the front end's files at their root: "index.html", "app.js", "app.css".
// It is read-only and safe for concurrent use.
func FS() fs.FS { return files }
