package static

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// ContentSecurityPolicy is sent with every response of the handler. No inline script
// or style may run: the page's one script and style sheet come from this origin, the
// WebSocket and /token go to it, and nothing may frame the page but the page's own
// origin. xterm.js's dynamic CSS goes through the CSSOM, which the policy allows
// (web/src/csp.ts).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// Cache lifetimes: the page itself is revalidated on every load (a cheap 304), so a
// new build is picked up at once; the assets it names change name when their content
// does, so a browser keeps them for a year without asking.
const (
	cacheHTML   = "no-cache"
	cacheAssets = "public, max-age=31536000, immutable"
)

// encodings are the compressed copies the build writes beside each asset, best first.
var encodings = []struct{ name, ext string }{{"br", ".br"}, {"gzip", ".gz"}}

// file is one servable file: its bytes as they are and compressed, each with its ETag.
type file struct {
	name         string // for the Content-Type and ServeContent
	contentType  string
	cacheControl string
	variants     []variant // identity first, then what encodings lists, if present
}

type variant struct {
	encoding string // "" for identity
	data     []byte
	etag     string
}

// pageHandler serves a built front end from memory.
type pageHandler struct {
	files map[string]*file // by path without the leading slash; "" is index.html
}

// NewHandler serves fsys, a built front end: index.html at / (/index.html redirects there) and
// every other file at its path, its .br and .gz copies sent instead to clients that
// accept them. Files are read once, now. Every response carries ContentSecurityPolicy
// and nosniff; index.html and files outside assets/ are revalidated on every use
// (no-cache, with an ETag), files under assets/ are cached for a year (their names carry
// their content's hash). Only GET and HEAD are served; a missing file is 404.
func NewHandler(fsys fs.FS) (http.Handler, error) {
	h := &pageHandler{files: make(map[string]*file)}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, e := range encodings {
			if strings.HasSuffix(p, e.ext) {
				if _, err := fs.Stat(fsys, strings.TrimSuffix(p, e.ext)); err == nil {
					return nil // a compressed copy: read with its original
				}
			}
		}
		f, err := readFile(fsys, p)
		if err != nil {
			return err
		}
		h.files[p] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	index, ok := h.files["index.html"]
	if !ok {
		return nil, fmt.Errorf("static: no index.html")
	}
	h.files[""] = index
	return h, nil
}

func readFile(fsys fs.FS, p string) (*file, error) {
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, err
	}
	ct := mime.TypeByExtension(path.Ext(p))
	switch path.Ext(p) { // the system's mime table may lack these or differ
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".js", ".mjs":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	}
	if ct == "" {
		ct = http.DetectContentType(data)
	}
	f := &file{name: p, contentType: ct, cacheControl: cacheHTML}
	if strings.HasPrefix(p, "assets/") {
		f.cacheControl = cacheAssets
	}
	sum := sha256.Sum256(data)
	tag := hex.EncodeToString(sum[:12])
	f.variants = append(f.variants, variant{"", data, `"` + tag + `"`})
	for _, e := range encodings {
		z, err := fs.ReadFile(fsys, p+e.ext)
		if err != nil {
			continue // not compressed; fine
		}
		f.variants = append(f.variants, variant{e.name, z, `"` + tag + "-" + e.name + `"`})
	}
	return f, nil
}

func (h *pageHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "index.html" || strings.HasSuffix(r.URL.Path, "/index.html") {
		// One address for the page, as http.FileServer has it; relative, for a prefix.
		hdr.Set("Location", "./")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	f, ok := h.files[name]
	if !ok {
		hdr.Set("Cache-Control", cacheHTML)
		http.NotFound(w, r)
		return
	}
	v := f.variants[0]
	if len(f.variants) > 1 {
		hdr.Set("Vary", "Accept-Encoding")
		v = f.pick(r.Header.Get("Accept-Encoding"))
	}
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", f.cacheControl)
	hdr.Set("ETag", v.etag)
	if v.encoding != "" {
		hdr.Set("Content-Encoding", v.encoding)
	}
	// ServeContent answers If-None-Match with 304, HEAD without a body, and ranges.
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(v.data))
}

// pick returns the best variant the Accept-Encoding header allows: the first of
// encodings with a q-value above 0, else identity.
func (f *file) pick(accept string) variant {
	q := acceptedEncodings(accept)
	for _, v := range f.variants[1:] {
		if w, ok := q[v.encoding]; ok && w > 0 {
			return v
		}
		if w, ok := q["*"]; ok && w > 0 {
			if _, named := q[v.encoding]; !named {
				return v
			}
		}
	}
	return f.variants[0]
}

// acceptedEncodings parses Accept-Encoding into encoding -> q (RFC 9110 12.5.3).
func acceptedEncodings(h string) map[string]float64 {
	q := make(map[string]float64)
	for part := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		w := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					w = f
				}
			}
		}
		q[name] = w
	}
	return q
}
