package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Version of kube-apiserver the tests run.
const Version = "v1.37.2"

var (
	assetsOnce sync.Once
	assetsDir  string
	assetsErr  error
)

// Assets returns the folder holding kube-apiserver and etcd, building them
// first (once per process) when they are missing.
func Assets() (string, error) {
	assetsOnce.Do(func() { assetsDir, assetsErr = findOrBuild() })
	return assetsDir, assetsErr
}

func findOrBuild() (string, error) {
	dir := os.Getenv("WEFT_K8S_ASSETS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("finding the cache folder for kube-apiserver: %w; set WEFT_K8S_ASSETS", err)
		}
		dir = filepath.Join(cache, "weft", "k8s-"+Version)
	}
	if executable(filepath.Join(dir, "kube-apiserver")) && executable(filepath.Join(dir, "etcd")) {
		return dir, nil
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "tools", "k8s", "build.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "WEFT_K8S_ASSETS="+dir)
	cmd.Stdout = os.Stderr // progress shows in go test -v and in CI logs
	cmd.Stderr = os.Stderr
	fmt.Fprintf(os.Stderr, "kubetest: kube-apiserver or etcd missing in %s; running %s\n", dir, script)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building kube-apiserver and etcd with %s: %w; see its output above, or build them by hand (make k8s-assets)", script, err)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if !executable(filepath.Join(dir, b)) {
			return "", fmt.Errorf("%s still missing in %s after %s ran", b, dir, strings.TrimSpace(script))
		}
	}
	return dir, nil
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
