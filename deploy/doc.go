// Package deploy generates the files that run the playground beyond
// `go run`: the seccomp profile of the server's own pod (seccomp/), the
// per-pod routing of the Kubernetes manifests (kubernetes/) and the nginx
// configuration that routes a session's reconnects to the server holding
// it (nginx/). `go run ./deploy/gen` writes them; the package's tests fail
// when a committed file differs from what it generates, and check every
// file against the real thing that reads it: Kubernetes' own types and
// Pod Security admission, kustomize, nginx, systemd-analyze and a
// container started under the shipped profile.
//
// Nothing here is linked into the playground binary: the Kubernetes,
// kustomize and Dockerfile libraries are imported by the tests only.
package deploy
