package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// TestSnapshotThroughPipes: `weft operator snapshot save -` writes the
// replicated state to standard output and `restore -` reads it from
// standard input, as `kubectl exec` (a container without a shell or tar)
// needs; a restore of bytes that are no snapshot is refused.
func TestSnapshotThroughPipes(t *testing.T) {
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policy")
	harness.WriteFile(t, filepath.Join(policyDir, "mesh.hcl"), raftPolicy)
	key := filepath.Join(dir, "state.key")
	harness.WriteFile(t, key, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n")
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	o := harness.WeftController(binDir, filepath.Join(dir, "data"), harness.FreeAddr(t), harness.FreeAddr(t),
		"--policy-dir", policyDir, "--raft-dir", filepath.Join(dir, "raft"), "--raft-addr", harness.FreeAddr(t),
		"--state-key-file", key, "--bootstrap-expect", "1")
	o.Process = harness.CtrlC
	ctl := harness.StartController(t, o)
	ctl.WaitFor(t, "a raft leader", 60*time.Second, func(s *harness.Status) bool { return s.Raft != nil && s.Raft.CanIssue })

	weft := filepath.Join(binDir, "weft")
	out, errOut, code := ctl.RunWeft(t, weft, "operator", "snapshot", "save", "-")
	if code != 0 || len(out) == 0 || !strings.Contains(errOut, "standard output") {
		t.Fatalf("snapshot save -: exit %d, %d bytes out, stderr %q; want the snapshot on stdout and the message on stderr", code, len(out), errOut)
	}
	t.Logf("saved %d bytes through standard output", len(out))

	restore := func(in []byte) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, weft, "operator", "snapshot", "restore", "-", "--admin", ctl.URL(), "--data-dir", ctl.DataDir)
		cmd.Env = harness.WithoutWeftEnv()
		cmd.Stdin = bytes.NewReader(in)
		b, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(b), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(b), 0
	}
	if msg, code := restore([]byte(out)); code != 0 || !strings.Contains(msg, "Restored") {
		t.Fatalf("snapshot restore - of what save wrote: exit %d: %s", code, msg)
	}
	if msg, code := restore([]byte("not a snapshot")); code == 0 {
		t.Fatalf("snapshot restore - of garbage passed: %s", msg)
	} else {
		t.Logf("garbage refused: %s", strings.TrimSpace(msg))
	}
}
