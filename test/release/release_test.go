package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const testVersion = "0.0.0-releasetest"

// repoRoot is the repository root, where the Makefile is.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	t.Logf("%s %s: %v", name, strings.Join(args, " "), time.Since(t0).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

var platforms = []struct {
	arch    string
	machine elf.Machine
}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}}

// TestRelease runs `make release` and checks every tarball: its checksum
// in SHA256SUMS, its files, and binaries that are static ELF files of its
// architecture, built with -trimpath and CGO_ENABLED=0, that say the
// release's version. Then, where a container builder runs, `make images`
// builds both images of each architecture and the test runs `weft
// version` and `weft-proxy --help` inside them.
func TestRelease(t *testing.T) {
	root := repoRoot(t)
	out := t.TempDir()
	run(t, root, "make", "release", "VERSION="+testVersion, "RELEASE_DIR="+out)

	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range platforms {
		name := fmt.Sprintf("weft_%s_linux_%s", testVersion, p.arch)
		b, err := os.ReadFile(filepath.Join(out, name+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if line := hex.EncodeToString(sum[:]) + "  " + name + ".tar.gz"; !strings.Contains(string(sums), line+"\n") {
			t.Errorf("SHA256SUMS lacks %q:\n%s", line, sums)
		}
		files := untar(t, b)
		var names []string
		for n := range files {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, want := range []string{"README.md", "weft", "weft-proxy", "systemd/weft-controller.service", "systemd/weft-proxy@.service"} {
			if _, ok := files[name+"/"+want]; !ok {
				t.Errorf("%s lacks %s; it holds %v", name, want, names)
			}
		}
		for _, bin := range []string{"weft", "weft-proxy"} {
			checkBinary(t, name+"/"+bin, files[name+"/"+bin], p.machine)
		}
	}
	// The binaries of this machine's architecture run and say their version.
	dir := filepath.Join(out, fmt.Sprintf("weft_%s_linux_%s", testVersion, runtime.GOARCH))
	for _, bin := range []string{"weft", "weft-proxy"} {
		if got := run(t, dir, filepath.Join(dir, bin), "version"); got != bin+" "+testVersion+"\n" {
			t.Errorf("%s version: %q, want %q", bin, got, bin+" "+testVersion)
		}
	}

	t.Run("images", func(t *testing.T) { testImages(t, root, out) })
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s is owned by %d:%d in the tarball, want 0:0", h.Name, h.Uid, h.Gid)
		}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = data
		}
	}
}

func checkBinary(t *testing.T, name string, b []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if f.Machine != machine {
		t.Errorf("%s is for %v, want %v", name, f.Machine, machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: not static", name, prog.Type)
		}
	}
	bi, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: reading its build info: %v", name, err)
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if set["-trimpath"] != "true" || set["CGO_ENABLED"] != "0" {
		t.Errorf("%s was built with -trimpath=%q CGO_ENABLED=%q; want -trimpath and CGO_ENABLED=0", name, set["-trimpath"], set["CGO_ENABLED"])
	}
	// -trimpath keeps -ldflags out of the build info: the version the
	// linker set is in the binary's data (and the binaries of this
	// machine's architecture are run below).
	if !bytes.Contains(b, []byte(testVersion)) {
		t.Errorf("%s does not hold its version %s", name, testVersion)
	}
}

// testImages builds the images with make images, in a storage of the
// test's own, and runs the binaries inside them: with podman run where
// the machine lets it start containers, else with buildah run (chroot
// isolation: the image's root file system and user, no OCI runtime).
func testImages(t *testing.T, root, releaseDir string) {
	buildah, err := exec.LookPath("buildah")
	if err != nil {
		t.Skip("no container builder: buildah is not installed (Debian: apt-get install buildah podman); the static binaries are tested above")
	}
	store := t.TempDir()
	global := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}
	run(t, root, "make", "images", "VERSION="+testVersion, "RELEASE_DIR="+releaseDir,
		"BUILDAH="+buildah+" "+strings.Join(global, " "), "IMAGE_PREFIX=localhost/weft-test")
	t.Cleanup(func() { exec.Command(buildah, append(global, "rm", "--all")...).Run() })

	for _, p := range platforms {
		for _, img := range []string{"weft", "weft-proxy"} {
			ref := fmt.Sprintf("localhost/weft-test/%s:%s-%s", img, testVersion, p.arch)
			got := run(t, root, buildah, append(global, "inspect", "--format", "{{.OCIv1.Config.User}} {{.OCIv1.Architecture}} {{.OCIv1.Config.Entrypoint}}", ref)...)
			if want := fmt.Sprintf("65532:65532 %s [/usr/bin/%s]", p.arch, img); strings.TrimSpace(got) != want {
				t.Errorf("%s: user, architecture and entrypoint %q, want %q", ref, strings.TrimSpace(got), want)
			}
		}
	}
	inside := func(img string, args ...string) string {
		ref := fmt.Sprintf("localhost/weft-test/%s:%s-%s", img, testVersion, runtime.GOARCH)
		if podman, err := exec.LookPath("podman"); err == nil {
			cmd := exec.Command(podman, append(append(global, "run", "--rm", "--network", "none", ref), args...)...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Logf("podman run %s %v: ran", ref, args)
				return string(out)
			}
			t.Logf("podman run %s cannot start a container on this machine (%v: %s); running it with buildah run --isolation chroot", ref, err, strings.TrimSpace(string(out)))
		}
		ctr := strings.TrimSpace(run(t, root, buildah, append(global, "from", ref)...))
		defer exec.Command(buildah, append(global, "rm", ctr)...).Run()
		return run(t, root, buildah, append(append(global, "run", "--isolation", "chroot", ctr, "--", "/usr/bin/"+img), args...)...)
	}
	if got := inside("weft", "version"); got != "weft "+testVersion+"\n" {
		t.Errorf("weft version in its image: %q, want %q", got, "weft "+testVersion)
	}
	if got := inside("weft-proxy", "--help"); !strings.Contains(got, "--controller") || !strings.Contains(got, "WEFT_JOIN_TOKEN") {
		t.Errorf("weft-proxy --help in its image lacks its flags:\n%s", got)
	}
}

// TestSystemdUnits checks examples/systemd with systemd-analyze verify:
// the units with their binaries at a path of the test's, and every
// warning (an unknown key, a bad value) is a failure.
func TestSystemdUnits(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: systemd); cannot verify examples/systemd")
	}
	src := filepath.Join(repoRoot(t), "examples", "systemd")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"weft", "weft-proxy"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"weft-controller.service", "weft-proxy@.service"} {
		b, err := os.ReadFile(filepath.Join(src, u))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "/usr/local/bin/") {
			t.Fatalf("%s runs nothing from /usr/local/bin", u)
		}
		if err := os.WriteFile(filepath.Join(dir, u), []byte(strings.ReplaceAll(string(b), "/usr/local/bin/", bin+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A template is verified through an instance of it.
	if err := os.Symlink("weft-proxy@.service", filepath.Join(dir, "weft-proxy@api-1.service")); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"weft-controller.service", "weft-proxy@api-1.service"} {
		cmd := exec.Command(sa, "verify", filepath.Join(dir, u))
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
}
