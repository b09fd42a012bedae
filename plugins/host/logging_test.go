package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/host"
)

// lineLog is a log that a test can wait on: every write wakes waiters.
type lineLog struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.wrote)
	l.wrote = make(chan struct{})
	return l.b.Write(p)
}

// waitFor waits (bounded) until the log holds s.
func (l *lineLog) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		l.mu.Lock()
		found, wrote := strings.Contains(l.b.String(), s), l.wrote
		l.mu.Unlock()
		if found {
			return
		}
		select {
		case <-wrote:
		case <-timeout:
			t.Fatalf("the log has no %q within %v:\n%s", s, wait, l.String())
		}
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPluginLogs: a plugin's lines come out in the controller's format (JSON
// here: every line a record) at their level; the plugin gets the
// controller's level in plugins.LogLevelEnv; a panic comes out as error
// records.
func TestPluginLogs(t *testing.T) {
	tests := []struct {
		mode  string
		level slog.Level
		env   string
		want  map[string]string // message -> level; absent: must not be logged
	}{
		{"logs", slog.LevelDebug, "debug", map[string]string{"plugin debug": "DEBUG", "plugin info": "INFO", "plugin warn": "WARN", "a raw line": "INFO"}},
		{"logs", slog.LevelInfo, "info", map[string]string{"plugin info": "INFO", "plugin warn": "WARN", "a raw line": "INFO"}},
		{"logs", slog.LevelWarn, "warn", map[string]string{"plugin warn": "WARN"}},
		{"panic", slog.LevelWarn, "warn", map[string]string{"plugin warn": "WARN", "panic: plugin exploded": "ERROR"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.env, func(t *testing.T) {
			log := &lineLog{wrote: make(chan struct{})}
			sum, err := host.FileChecksum(os.Args[0])
			if err != nil {
				t.Fatal(err)
			}
			sup, err := host.New(host.Options{
				Name: "fake",
				Command: func() *exec.Cmd {
					cmd := exec.Command(os.Args[0])
					cmd.Env = []string{modeEnv + "=" + tt.mode}
					return cmd
				},
				Checksum:   func() ([]byte, error) { return sum, nil },
				Request:    plugins.ConfigureRequest{Source: "/nowhere"},
				Logger:     slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: tt.level})).With("adapter", "fake"),
				MinBackoff: time.Hour, // one run: a panicked plugin is not restarted within the test
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { sup.Run(ctx, make(chan host.Update, 10), nil); close(done) }()
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(wait):
					t.Error("Run did not return")
				}
			}()
			last := "plugin warn"
			if tt.mode == "panic" {
				last = "adapter plugin failed; restarting"
			}
			log.waitFor(t, last)
			for msg := range tt.want {
				log.waitFor(t, `"msg":"`+msg+`"`)
			}

			seen := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("a line is not JSON: %q: %v", line, err)
				}
				msg, _ := rec["msg"].(string)
				seen[msg], _ = rec["level"].(string)
				if msg == "plugin warn" && rec["env"] != tt.env {
					t.Errorf("the plugin got %s=%v, want %s", plugins.LogLevelEnv, rec["env"], tt.env)
				}
				if msg == "plugin warn" && rec["adapter"] != "fake" {
					t.Errorf("plugin line %q does not name the adapter", line)
				}
			}
			for _, msg := range []string{"plugin debug", "plugin info", "plugin warn", "a raw line", "panic: plugin exploded"} {
				if want, ok := tt.want[msg]; ok && seen[msg] != want {
					t.Errorf("%q logged at %q, want %s", msg, seen[msg], want)
				} else if !ok && seen[msg] != "" {
					t.Errorf("%q logged at %s, below the level %s", msg, seen[msg], tt.env)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s", log.String())
			}
		})
	}
}
