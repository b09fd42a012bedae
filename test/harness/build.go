package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MeshBinaries names the binaries every mesh test runs (weft, weft-proxy
// and the demo app weft-demo-app) and the extra ones, for Main.
func MeshBinaries(extra map[string]string) map[string]string {
	bins := map[string]string{
		"weft":          "./cmd/weft",
		"weft-proxy":    "./cmd/weft-proxy",
		"weft-demo-app": "./examples/local/demoapp",
	}
	for name, pkg := range extra {
		bins[name] = pkg
	}
	return bins
}

// Main is the body of a TestMain: it builds the binaries (BuildBinaries),
// calls setup with their directory, runs the tests and removes the
// directory. It returns the exit code, for os.Exit.
func Main(m *testing.M, binaries map[string]string, setup func(dir string) error) int {
	dir, cleanup, err := BuildBinaries(binaries)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	if setup != nil {
		if err := setup(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// BuildBinaries builds each package of the module (an import path relative
// to the module's root, such as "./cmd/weft") into a new temporary directory
// under the given name, and returns the directory and a cleanup that
// removes it.
func BuildBinaries(binaries map[string]string) (dir string, cleanup func(), err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err = os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	for out, pkg := range binaries {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("building %s: %v\n%s", pkg, err, b)
		}
	}
	return dir, cleanup, nil
}

// ModuleRoot is the directory of the main module's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module (go env GOMOD = %q)", gomod)
	}
	return filepath.Dir(gomod), nil
}
