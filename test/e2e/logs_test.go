package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// TestLogsJSON (issue 14, logs): a local mesh whose controller runs with
// --log-format json, and whose sidecars and apps inherit JSON logs and
// JSON access logs (WEFT_LOG_FORMAT, WEFT_ACCESS_LOG_FORMAT). One request
// crosses the client's and web's sidecars: both access lines carry the
// same request ID, the one the web app saw; and every line the controller
// wrote to its stderr (its adapter plugin's included) is a JSON record.
// Addresses: 127.0.104.x, this test's own range.
func TestLogsJSON(t *testing.T) {
	t.Setenv("WEFT_LOG_FORMAT", "json") // sidecars, apps; the controller has the flag
	t.Setenv("WEFT_ACCESS_LOG_FORMAT", "json")
	t.Setenv("WEFT_LOG_LEVEL", "debug") // plugin lines at debug come through too
	ctl, _ := startLocalMesh(t, clientWebPolicy, clientWebWorkloads(), "127.0.104.2", "--log-format", "json")
	// client is 127.0.104.2, web 127.0.104.3: the test calls through the
	// client's sidecar as its app would.
	var answer struct {
		Service   string `json:"service"`
		Caller    string `json:"caller"`
		RequestID string `json:"request_id"`
	}
	harness.Eventually(t, "a call from client to web through both sidecars", 30*time.Second, func() error {
		if err := harness.GetJSON("http://127.0.104.2:9001/", &answer); err != nil {
			return err
		}
		if answer.Service != "web" || answer.RequestID == "" {
			return fmt.Errorf("answer %+v, want web's with a request ID", answer)
		}
		return nil
	})
	logs := filepath.Join(ctl.DataDir, "adapters", "local", "logs")
	// The sidecars write their access line once the answer is out; their
	// log is flushed at most --log-flush (100ms) later.
	var out, in map[string]any
	harness.Eventually(t, "both sidecars' access lines with the request ID", 10*time.Second, func() error {
		out = accessRecord(t, filepath.Join(logs, "client-0.proxy.log"), "outbound", answer.RequestID)
		in = accessRecord(t, filepath.Join(logs, "web-0.proxy.log"), "inbound", answer.RequestID)
		if out == nil || in == nil {
			return fmt.Errorf("outbound line %v, inbound line %v", out, in)
		}
		return nil
	})
	clientID := "spiffe://weft.test/ns/default/svc/client"
	for k, v := range map[string]any{"caller": clientID, "dest": "web", "status": 200.0, "method": "GET", "path": "/"} {
		if out[k] != v || in[k] != v {
			t.Errorf("%s: outbound %v, inbound %v, want %v", k, out[k], in[k], v)
		}
	}
	if ep, _ := out["endpoint"].(string); !strings.HasPrefix(ep, "127.0.104.3:") {
		t.Errorf("outbound endpoint %v, want web's sidecar on 127.0.104.3", out["endpoint"])
	}

	// Every line of the controller's stderr, plugin lines included, is a
	// JSON record; the apps' and sidecars' logs too.
	ctl.Stop()
	var plugin int
	for _, line := range strings.Split(strings.TrimSpace(ctl.Out.String()), "\n") {
		rec := map[string]any{}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a controller stderr line is not JSON: %q: %v", line, err)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("a controller line is not a record: %q", line)
		}
		if rec["logger"] != nil && rec["adapter"] == "local" {
			plugin++ // a line the plugin process wrote (host.HCLogger names it)
		}
	}
	if plugin == 0 {
		t.Errorf("no line of the adapter plugin in the controller's log:\n%s", ctl.Out.String())
	}
	for _, f := range []string{"client-0.proxy.log", "web-0.proxy.log", "client-0.app.log", "web-0.app.log"} {
		b, err := os.ReadFile(filepath.Join(logs, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if !json.Valid([]byte(line)) {
				t.Errorf("%s: a line is not JSON: %q", f, line)
			}
		}
	}
}

// accessRecord is the access line of direction with request ID id in a
// sidecar's log, nil when there is none yet.
func accessRecord(t *testing.T, path, direction, id string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		rec := map[string]any{}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if rec["msg"] == "access" && rec["direction"] == direction && rec["request_id"] == id && rec["outcome"] == nil {
			return rec
		}
	}
	return nil
}

// TestBadLogFlags: a bad --log-level or --log-format is a usage error of
// any weft subcommand: exit status 2 and what to give.
func TestBadLogFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"controller", "--log-format", "yaml", "--policy-dir", t.TempDir()}, `--log-format: want text or json, got "yaml"`},
		{[]string{"status", "--log-level", "loud"}, `--log-level: want debug, info, warn or error, got "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, "weft"), tt.args...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tt.want) {
				t.Errorf("weft %s: %v, output %q; want exit status 2 and %q", strings.Join(tt.args, " "), err, out, tt.want)
			}
		})
	}
}
