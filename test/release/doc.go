// Package release tests what a user installs: `make release` (static,
// versioned tarballs for linux/amd64 and linux/arm64 with SHA256SUMS),
// the images `make images` builds from the Dockerfile (FROM scratch, run
// with buildah or podman when one is installed, skipped with the reason
// otherwise), and the systemd units of examples/systemd (checked by
// systemd-analyze verify when it is installed). Entry point: the tests in
// release_test.go; they run make in the repository root.
package release
