package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteFile writes content to path, creating its directory; a failure
// fails the test.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ReplaceFile replaces path's content at once (a temporary file beside it,
// renamed over it), so that a controller polling the file never reads it
// half written.
func ReplaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	WriteFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// PolicyFile is the file WritePolicy writes in its policy directory.
const PolicyFile = "mesh.hcl"

// WritePolicy writes policy as dir/policy/mesh.hcl and returns the policy
// directory, for a controller's --policy-dir. Change it later with
// ReplaceFile(t, filepath.Join(policyDir, PolicyFile), ...).
func WritePolicy(t testing.TB, dir, policy string) string {
	t.Helper()
	policyDir := filepath.Join(dir, "policy")
	WriteFile(t, filepath.Join(policyDir, PolicyFile), policy)
	return policyDir
}

// Workload is one service of the local adapter's workloads file: name
// runs command, listening on port 8080 (of its own loopback address);
// attrs are more attribute lines, such as "instances = 2" or
// `service = "store"`.
func Workload(name, command string, attrs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "service %q {\n  command = %q\n  port    = 8080\n", name, command)
	for _, a := range attrs {
		fmt.Fprintf(&b, "  %s\n", a)
	}
	b.WriteString("}\n")
	return b.String()
}
