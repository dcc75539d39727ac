package image

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Kind is what a source names.
type Kind string

const (
	// KindUbuntu is the official ubuntu-base tarball of a pinned release.
	KindUbuntu Kind = "ubuntu"
	// KindDocker is an OCI or Docker image in a registry: docker://REF.
	KindDocker Kind = "docker"
	// KindPath is a directory (used in place) or an archive (unpacked
	// into the cache) on this machine.
	KindPath Kind = "path"
	// KindHost is the host's /usr, /bin and /lib, read-only, with a
	// synthesised /etc (runtime.HostRootfs).
	KindHost Kind = "host"
	// KindAuto is the cached Ubuntu, else Ubuntu downloaded now, else,
	// when that fails, host with a warning.
	KindAuto Kind = "auto"
)

// Source is a parsed source string: one syntax for `--rootfs`,
// `run --rootfs` and `playground rootfs`.
//
//	ubuntu, ubuntu:24.04, ubuntu:22.04   the official ubuntu-base tarball
//	docker://REF                         an image from a registry
//	PATH                                 a directory or a .tar[.gz|.xz|.zst] archive
//	host                                 the host's /usr read-only
//	auto                                 cached Ubuntu, else download, else host
//	NAME=SOURCE                          any of these, named NAME
type Source struct {
	// Name names the environment: given as NAME=, else derived from the
	// source ("ubuntu", "ubuntu-22.04", "python-3.12-slim", "course").
	Name string
	// Kind is what the source names.
	Kind Kind
	// Version is the Ubuntu release of KindUbuntu ("24.04").
	Version string
	// Ref is the image reference of KindDocker, as given after docker://.
	Ref string
	// Path is the absolute path of KindPath.
	Path string
}

// DefaultUbuntu is the release that `ubuntu` and `auto` mean.
const DefaultUbuntu = "24.04"

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName reports whether s can name an environment: lower-case letters,
// digits, '.', '_' and '-', starting with a letter or digit, at most 63
// bytes (it appears in URLs as ?env=NAME).
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ParseSource parses a source string. It checks syntax only: whether a
// path exists or an image can be pulled is Prepare's business.
func ParseSource(s string) (Source, error) {
	orig := s
	var named string
	if k, v, ok := strings.Cut(s, "="); ok && ValidName(k) {
		named, s = k, v
	} else if ok && !strings.ContainsAny(k, "/.:") {
		return Source{}, fmt.Errorf("source %q: environment name %q: want lower-case letters, digits, '.', '_' and '-', starting with a letter or digit", orig, k)
	}
	if s == "" {
		return Source{}, fmt.Errorf("source %q: empty", orig)
	}
	var src Source
	switch {
	case s == "host":
		src = Source{Kind: KindHost, Name: "host"}
	case s == "auto":
		src = Source{Kind: KindAuto, Name: "default"}
	case s == "ubuntu" || strings.HasPrefix(s, "ubuntu:"):
		v := strings.TrimPrefix(strings.TrimPrefix(s, "ubuntu"), ":")
		if v == "" {
			v = DefaultUbuntu
		}
		if _, ok := ubuntuVersions()[v]; !ok {
			return Source{}, fmt.Errorf("source %q: no pinned Ubuntu release %q (known: %s)", orig, v, strings.Join(knownUbuntu(), ", "))
		}
		src = Source{Kind: KindUbuntu, Version: v, Name: "ubuntu"}
		if v != DefaultUbuntu {
			src.Name = "ubuntu-" + v
		}
	case strings.HasPrefix(s, "docker://"):
		ref := strings.TrimPrefix(s, "docker://")
		r, err := name.ParseReference(ref)
		if err != nil {
			return Source{}, fmt.Errorf("source %q: %w", orig, err)
		}
		src = Source{Kind: KindDocker, Ref: ref, Name: imageName(r)}
	case strings.Contains(s, "://"):
		return Source{}, fmt.Errorf("source %q: unknown scheme (want docker://REF, a path, ubuntu, ubuntu:VERSION, host or auto)", orig)
	default:
		abs, err := filepath.Abs(s)
		if err != nil {
			return Source{}, fmt.Errorf("source %q: %w", orig, err)
		}
		src = Source{Kind: KindPath, Path: abs, Name: pathName(abs)}
	}
	if named != "" {
		src.Name = named
	}
	return src, nil
}

// String is the canonical text of the source, without its name:
// "ubuntu:24.04", "docker://python:3.12-slim", "/srv/rootfs.tar.zst".
func (s Source) String() string {
	switch s.Kind {
	case KindUbuntu:
		return "ubuntu:" + s.Version
	case KindDocker:
		return "docker://" + s.Ref
	case KindPath:
		return s.Path
	}
	return string(s.Kind)
}

// imageName derives an environment name from an image reference:
// docker://python:3.12-slim is "python-3.12-slim", ghcr.io/org/course:1
// is "course-1", a digest reference is the repository's last element.
func imageName(r name.Reference) string {
	repo := r.Context().RepositoryStr()
	n := path.Base(repo)
	if t, ok := r.(name.Tag); ok && t.TagStr() != "latest" {
		n += "-" + t.TagStr()
	}
	return sanitizeName(n)
}

// pathName derives an environment name from a path: its base name less
// any archive extension.
func pathName(p string) string {
	b := filepath.Base(p)
	for _, ext := range []string{".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar"} {
		if strings.HasSuffix(strings.ToLower(b), ext) {
			b = b[:len(b)-len(ext)]
			break
		}
	}
	return sanitizeName(b)
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	n := strings.TrimLeft(b.String(), "._-")
	if len(n) > 63 {
		n = n[:63]
	}
	if n == "" {
		n = "rootfs"
	}
	return n
}
