package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// TestMain runs main itself when asked to (runMainEnv): the tests below
// start this test binary as the weft-proxy process, to read its standard
// error and exit status as a user would.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"weft-proxy"}, strings.Fields(os.Getenv(runArgsEnv))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	runMainEnv = "WEFT_PROXY_TEST_RUN_MAIN"
	runArgsEnv = "WEFT_PROXY_TEST_ARGS"
)

// proxyProcess starts weft-proxy as a process with args.
func proxyProcess(t *testing.T, stderr *bytes.Buffer, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, runMainEnv+"=1", runArgsEnv+"="+strings.Join(args, " "))...)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// waitExit waits (bounded) for cmd to exit and returns its status.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(proxytest.Wait):
		t.Fatal("weft-proxy did not exit")
		return -1
	}
}

// textRecord is a line of slog's text handler; accessText one of the text
// access log.
var (
	textRecord = regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=("([^"\\]|\\.)*"|\S+)( [^ =]+=("([^"\\]|\\.)*"|\S*))*$`)
	accessText = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} access (inbound|outbound)( [A-Z]+)?( [^ =]+=("([^"\\]|\\.)*"|\S+))+$`)
)

// TestLogFormats runs weft-proxy with each --log-format, --log-level and
// --access-log-format, sends it a request, stops it, and reads every line
// of its standard error: each is a record of the format asked for, and
// the level filters its events (access lines are data: always there).
func TestLogFormats(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		format, level string
		startLine     bool // the info line "weft-proxy for instance"
	}{
		{"text", "debug", true},
		{"text", "info", true},
		{"text", "warn", false},
		{"json", "debug", true},
		{"json", "info", true},
		{"json", "error", false},
		{"JSON", "WARN", false},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.level, func(t *testing.T) {
			f := proxytest.StartController(t, ca, proxytest.ControllerOptions{})
			admin, outbound := freeAddr(t), freeAddr(t)
			_, port, _ := net.SplitHostPort(outbound)
			n, _ := strconv.Atoi(port)
			var stderr bytes.Buffer
			cmd := proxyProcess(t, &stderr, []string{tokenEnv + "=" + f.Token},
				"--instance", "web-1", "--controller", f.Addr, "--trust-bundle", writeBundle(t, ca.RootPEM), "--admin", admin,
				"--log-format", tt.format, "--log-level", tt.level, "--access-log-format", tt.format, "--log-flush", "0")
			f.NextRequest(t)
			f.Send(t, &meshapi.ConfigUpdate{Version: 1, Config: &meshapi.ProxyConfig{
				InstanceId: "web-1", Service: "web", TrustDomain: "weft.test",
				Upstreams: []*meshapi.Upstream{{Name: "api", Service: "api", SpiffeId: "spiffe://weft.test/ns/default/svc/api",
					BindAddress: "127.0.0.1", LocalPort: uint32(n), Protocol: meshapi.Protocol_PROTOCOL_HTTP}},
			}})
			if r := f.NextRequest(t); r.AppliedVersion != 1 {
				t.Fatalf("no ACK: %v", r)
			}
			// No endpoint: a 503 from the sidecar itself, and an access line.
			c := &http.Client{Transport: &http.Transport{}, Timeout: proxytest.Wait}
			resp, err := c.Get("http://" + outbound + "/x%22y")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			c.CloseIdleConnections()
			cmd.Process.Signal(syscall.SIGTERM)
			if code := waitExit(t, cmd); code != 0 {
				t.Fatalf("exit status %d after SIGTERM; stderr:\n%s", code, &stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			var access, start int
			for _, line := range lines {
				if strings.EqualFold(tt.format, "json") {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("a stderr line is not JSON: %q: %v", line, err)
					}
					if m["msg"] == "access" {
						access++
						if m["status"] != 503.0 || m["path"] != "/x\"y" || m["request_id"] == nil {
							t.Errorf("access line %q: want status 503, the path and a request ID", line)
						}
					}
					if m["msg"] == "weft-proxy for instance: admin and controllers" {
						start++
					}
					continue
				}
				switch {
				case accessText.MatchString(line):
					access++
					if !strings.Contains(line, " status=503 ") || !strings.Contains(line, ` request_id=`) {
						t.Errorf("access line %q: want status 503 and a request ID", line)
					}
				case textRecord.MatchString(line):
					if strings.Contains(line, `msg="weft-proxy for instance: admin and controllers"`) {
						start++
					}
				default:
					t.Fatalf("a stderr line is neither a text record nor an access line: %q", line)
				}
			}
			if access != 1 {
				t.Errorf("%d access lines, want 1", access)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.startLine]; start != want {
				t.Errorf("%d start lines at level %s, want %d", start, tt.level, want)
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", &stderr)
			}
		})
	}
}

// TestBadLogFlags: a bad value is a usage error: exit status 2, and the
// error says what to give.
func TestBadLogFlags(t *testing.T) {
	tests := []struct{ flag, value, want string }{
		{"--log-format", "yaml", `--log-format: want text or json, got "yaml"`},
		{"--log-level", "verbose", `--log-level: want debug, info, warn or error, got "verbose"`},
		{"--access-log-format", "logfmt", `--access-log-format: want text or json, got "logfmt"`},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := proxyProcess(t, &stderr, nil, "--instance", "web-1", "--controller", "127.0.0.1:1", "--trust-bundle", "/nonexistent",
				"--admin", "127.0.0.1:0", tt.flag, tt.value)
			if code := waitExit(t, cmd); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.want)
			}
		})
	}
}
