package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The uid and gid of the images' weft user, which the Kubernetes pods run
// as (their fsGroup too).
const weftID = 65532

// TestReadStateKeyModes: the state key file must be the owner's, or its
// group's when that group is the process's own (a Kubernetes Secret with
// defaultMode 0400 and the pod's fsGroup: 0440, group fsGroup); anything
// wider is refused.
func TestReadStateKeyModes(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give the key file another group and to run the reader as another user")
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"
	dir := t.TempDir()
	// The reader, as the weft user, must reach the files.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		mode      os.FileMode
		gid       int
		asWeft    bool // read as uid/gid 65532, as in the pod
		wantError string
	}{
		{"owner read-write", 0o600, 0, false, ""},
		{"owner read-only", 0o400, 0, false, ""},
		{"others read", 0o644, 0, false, "readable by others"},
		{"group root", 0o440, 0, false, "not this process's own"},
		{"group another", 0o440, weftID, false, "not this process's own"},
		{"a Secret with fsGroup, read in the pod", 0o440, weftID, true, ""},
		{"others read, in the pod", 0o444, weftID, true, "readable by others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 0, tc.gid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			var got string
			if tc.asWeft {
				got = readAsWeft(t, path)
			} else if _, err := readStateKey(path); err != nil {
				got = err.Error()
			}
			switch {
			case tc.wantError == "" && got != "":
				t.Errorf("mode %v group %d: %s, want the key", tc.mode, tc.gid, got)
			case tc.wantError != "" && !strings.Contains(got, tc.wantError):
				t.Errorf("mode %v group %d: %q, want an error saying %q", tc.mode, tc.gid, got, tc.wantError)
			}
		})
	}
}

// readAsWeft reads the key in a copy of this test binary running as the
// weft user (TestReadStateKeyHelper) and returns its error, "" for none.
func readAsWeft(t *testing.T, path string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(path), "reader.test")
	if _, err := os.Stat(bin); err != nil {
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestReadStateKeyHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WEFT_STATE_KEY_HELPER="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: weftID, Gid: weftID}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the reader as uid %d: %v\n%s", weftID, err, out)
	}
	s := string(out)
	if i := strings.Index(s, "READ:"); i >= 0 {
		return strings.TrimSpace(strings.SplitN(s[i+5:], "\n", 2)[0])
	}
	t.Fatalf("the reader said nothing:\n%s", s)
	return ""
}

// TestReadStateKeyHelper is readAsWeft's reader.
func TestReadStateKeyHelper(t *testing.T) {
	path := os.Getenv("WEFT_STATE_KEY_HELPER")
	if path == "" {
		t.Skip("run by TestReadStateKeyModes")
	}
	_, err := readStateKey(path)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	os.Stdout.WriteString("READ:" + msg + "\n")
}
