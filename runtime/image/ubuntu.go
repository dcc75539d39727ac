package image

import (
	goruntime "runtime"
	"sort"
)

// Release is one pinned ubuntu-base tarball.
type Release struct {
	Version string // "24.04": what ubuntu:VERSION names
	Point   string // "24.04.3": the point release pinned
	Arch    string // Debian architecture: amd64, arm64
	URL     string
	SHA256  string // hex, from Ubuntu's SHA256SUMS of the point release
}

// UbuntuReleases are the ubuntu-base tarballs that `ubuntu`,
// `ubuntu:VERSION` and `auto` download, pinned by URL and SHA-256.
//
// The URLs name the point-release directory (releases/24.04.3/release/),
// never releases/24.04/release/, which holds only the newest point
// release and so breaks a pin when the next one ships. The SHA-256 values
// are those of Ubuntu's SHA256SUMS for each directory; 22.04.5's are the
// values several public projects pin (termux's proot-distro among them)
// and agree on, as no Ubuntu mirror is reachable from where this was
// written.
var UbuntuReleases = []Release{
	{"24.04", "24.04.3", "amd64", "https://cdimage.ubuntu.com/ubuntu-base/releases/24.04.3/release/ubuntu-base-24.04.3-base-amd64.tar.gz", "6bc2cde3930ad088b3bb46fa45279e96d25bc3810f209850ecbe4722711874f9"},
	{"24.04", "24.04.3", "arm64", "https://cdimage.ubuntu.com/ubuntu-base/releases/24.04.3/release/ubuntu-base-24.04.3-base-arm64.tar.gz", "7b2dced6dd56ad5e4a813fa25c8de307b655fdabc6ea9213175a92c48dabb048"},
	{"22.04", "22.04.5", "amd64", "https://cdimage.ubuntu.com/ubuntu-base/releases/22.04.5/release/ubuntu-base-22.04.5-base-amd64.tar.gz", "242cd8898b33ea806ef5f13b1076ed7c76f9f989d18384452f7166692438ff1a"},
	{"22.04", "22.04.5", "arm64", "https://cdimage.ubuntu.com/ubuntu-base/releases/22.04.5/release/ubuntu-base-22.04.5-base-arm64.tar.gz", "075d4abd2817a5023ab0a82f5cb314c5ec0aa64a9c0b40fd3154ca3bfdae979f"},
}

// hostArch is this machine's Debian architecture name.
func hostArch() string {
	switch goruntime.GOARCH {
	case "amd64":
		return "amd64"
	case "arm64":
		return "arm64"
	}
	return goruntime.GOARCH
}

func ubuntuVersions() map[string]bool {
	m := map[string]bool{}
	for _, r := range UbuntuReleases {
		m[r.Version] = true
	}
	return m
}

func knownUbuntu() []string {
	var v []string
	for k := range ubuntuVersions() {
		v = append(v, k)
	}
	sort.Strings(v)
	return v
}

// findRelease picks the release of version for arch from table.
func findRelease(table []Release, version, arch string) (Release, bool) {
	for _, r := range table {
		if r.Version == version && r.Arch == arch {
			return r, true
		}
	}
	return Release{}, false
}
