package sdktest

import (
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/plugintest"
	"github.com/weftmesh/weft/plugins/sdk"
)

// OverPlugin returns an open func that launches cmd (a fresh exec.Cmd from newCmd) as a real go-plugin process with AutoMTLS and returns its gRPC client; the process is killed at test cleanup.
//
// The process is shut down the way the controller does it (client.Kill:
// gracefully, then by force); its log goes to the test's log.
func OverPlugin(newCmd func() *exec.Cmd) func(t *testing.T) sdk.Adapter {
	return func(t *testing.T) sdk.Adapter {
		t.Helper()
		out := &testLog{t: t}
		t.Cleanup(out.stop) // runs after Kill below
		logger := hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Info, Output: out})
		client := plugin.NewClient(plugins.ClientConfig(newCmd(), logger))
		t.Cleanup(client.Kill)
		a, err := plugins.Dispense(client)
		if err != nil {
			t.Fatalf("launching adapter plugin: %v", err)
		}
		return a
	}
}

// InMemory returns an open func wrapping the adapter in the real gRPC shims in memory.
//
// If the adapter implements io.Closer, it is closed at test cleanup.
func InMemory(newAdapter func() sdk.Adapter) func(t *testing.T) sdk.Adapter {
	return func(t *testing.T) sdk.Adapter {
		t.Helper()
		impl := newAdapter()
		a := plugintest.GRPC(t, impl)
		if c, ok := impl.(io.Closer); ok {
			t.Cleanup(func() {
				if err := c.Close(); err != nil {
					t.Errorf("closing adapter: %v", err)
				}
			})
		}
		return a
	}
}

// testLog writes log lines to t.Log until the test is cleaned up, and
// drops them after, when t.Log would panic.
type testLog struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}
