package sdk_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/sdk"
)

// The test binary doubles as a plugin and as a host of that plugin,
// chosen by modeEnv (see TestMain).
const (
	modeEnv   = "WEFT_SDK_TEST_MODE"   // "plugin" or "host"
	markerEnv = "WEFT_SDK_TEST_MARKER" // file the plugin's Close writes
)

const wait = 10 * time.Second

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "plugin":
		sdk.Serve(&closer{marker: os.Getenv(markerEnv)})
		return
	case "host":
		runHost()
		return
	}
	os.Exit(m.Run())
}

// closer is an adapter that records, when closed, how many of its Watch
// calls were still running.
type closer struct {
	marker  string
	running atomic.Int32
}

func (c *closer) Info(context.Context) (*sdk.InfoResponse, error) {
	return &sdk.InfoResponse{Name: "closer", ProtocolVersion: sdk.ProtocolVersion}, nil
}

func (c *closer) Configure(context.Context, *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
	return &sdk.ConfigureResponse{}, nil
}

func (c *closer) Watch(ctx context.Context, _ *sdk.WatchRequest, events chan<- sdk.WatchEvent) error {
	c.running.Add(1)
	defer c.running.Add(-1)
	select {
	case events <- sdk.WatchEvent{}:
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

func (c *closer) Close() error {
	return os.WriteFile(c.marker, fmt.Appendf(nil, "closed with %d watches running", c.running.Load()), 0o600)
}

// pluginCmd runs this binary as the plugin. go-plugin appends the host's
// own environment after cmd.Env, so a host helper must not carry modeEnv.
func pluginCmd(marker string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{modeEnv + "=plugin", markerEnv + "=" + marker}
	return cmd
}

// runHost starts the plugin, prints its pid and blocks until it is killed.
func runHost() {
	_ = os.Unsetenv(modeEnv)
	client := plugin.NewClient(plugins.ClientConfig(pluginCmd(os.Getenv(markerEnv)), hclog.NewNullLogger()))
	a, err := plugins.Dispense(client)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	if _, err := a.Info(context.Background()); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("PID", client.ReattachConfig().Pid)
	select {}
}

// syncBuffer is a log sink safe for go-plugin's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGracefulShutdownCloses: client.Kill cancels the watch, calls Close,
// and the plugin exits without being killed.
func TestGracefulShutdownCloses(t *testing.T) {
	marker := t.TempDir() + "/closed"
	var logs syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &logs})
	client := plugin.NewClient(plugins.ClientConfig(pluginCmd(marker), logger))
	t.Cleanup(client.Kill)
	a, err := plugins.Dispense(client)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan plugins.WatchEvent)
	watchDone := make(chan error, 1)
	go func() { watchDone <- a.Watch(ctx, &plugins.WatchRequest{}, events) }()
	select {
	case <-events:
	case <-time.After(wait):
		t.Fatal("no event from the plugin within", wait)
	}

	client.Kill()
	if !client.Exited() {
		t.Error("plugin process still running after Kill")
	}
	if strings.Contains(logs.String(), "failed to exit gracefully") {
		t.Errorf("plugin was force-killed instead of exiting gracefully; host log:\n%s", logs.String())
	}
	got, err := os.ReadFile(marker)
	if err != nil {
		t.Fatalf("Close was not called on graceful shutdown: %v", err)
	}
	if want := "closed with 0 watches running"; string(got) != want {
		t.Errorf("Close recorded %q, want %q", got, want)
	}
	select {
	case err := <-watchDone:
		if err == nil {
			t.Error("host Watch returned nil after the plugin went away mid-watch, want an error")
		}
	case <-time.After(wait):
		t.Fatal("host Watch did not return within", wait, "of Kill")
	}
}

// TestRunByHand: without the handshake cookie the binary says it is a
// plugin and exits 1.
func TestRunByHand(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=plugin", markerEnv+"="+t.TempDir()+"/closed")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("run by hand: %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "This binary is a plugin") {
		t.Errorf("stderr %q does not say the binary is a plugin", stderr.String())
	}
}

// readPID reads the "PID n" line the host helper prints.
func readPID(t *testing.T, sc *bufio.Scanner) int {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		var pid int
		if !ok {
			t.Fatal("host helper exited without printing the plugin's pid")
		}
		if _, err := fmt.Sscanf(l, "PID %d", &pid); err != nil {
			t.Fatalf("host helper printed %q: %v", l, err)
		}
		return pid
	case <-time.After(wait):
		t.Fatal("host helper printed nothing within", wait)
	}
	return 0
}
