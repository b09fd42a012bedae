package host_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/host"
	"github.com/weftmesh/weft/plugins/sdk"
)

// The test binary doubles as an adapter plugin whose behaviour modeEnv
// names (see TestMain and fake).
const (
	modeEnv   = "WEFT_HOST_TEST_MODE"
	markerEnv = "WEFT_HOST_TEST_MARKER"
)

const wait = 20 * time.Second

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		sdk.Serve(&fake{mode: mode, marker: os.Getenv(markerEnv)})
		return
	}
	os.Exit(m.Run())
}

// fake behaves as mode says:
//
//	good        one snapshot with instance "a", then blocks
//	badconfig   Configure answers with an error diagnostic
//	oldversion  Info reports protocol version 0
//	watcherr    one snapshot, then Watch fails
//	outage      through sdk.Loop: a snapshot that drops one task, then a
//	            failed read of the scheduler, then snapshots again
//	logs        one snapshot, then a line at debug, info and warn (with
//	            plugins.LogLevelEnv) and a raw one, then blocks
//	panic       as logs, then panics
//	badoption   declares an int option "level" and is given "high"; its
//	            Configure would accept anything
type fake struct{ mode, marker string }

func (f *fake) Info(context.Context) (*sdk.InfoResponse, error) {
	v := sdk.ProtocolVersion
	if f.mode == "oldversion" {
		v = 0
	}
	var caps []string
	if f.mode == "verifier" {
		caps = []string{sdk.CapVerifiesIdentity}
	}
	return &sdk.InfoResponse{Name: "fake", ProtocolVersion: v, Capabilities: caps,
		Options: []sdk.OptionSpec{{Name: "level", Type: sdk.OptionInt, Default: "1", Description: "how loud"}}}, nil
}

func (f *fake) VerifyIdentity(_ context.Context, req *sdk.VerifyIdentityRequest) (*sdk.VerifyIdentityResponse, error) {
	if req.Credential != "good" {
		return nil, errors.New("credential refused by the fake scheduler")
	}
	return &sdk.VerifyIdentityResponse{InstanceID: req.InstanceID, Service: "web", Namespace: "default"}, nil
}

func (f *fake) Configure(_ context.Context, req *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
	if f.mode == "badconfig" {
		return &sdk.ConfigureResponse{Diagnostics: []sdk.Diagnostic{
			sdk.Errorf("Source not found", "no file at %s", req.Source),
		}}, nil
	}
	return &sdk.ConfigureResponse{Diagnostics: []sdk.Diagnostic{sdk.Warningf("Just so you know", "all is fine")}}, nil
}

func (f *fake) Watch(ctx context.Context, _ *sdk.WatchRequest, events chan<- sdk.WatchEvent) error {
	if f.mode == "outage" {
		return outageWatch(ctx, events)
	}
	in := sdk.Instance{ID: "a", Service: "web", Address: "127.0.0.1", Ports: map[string]int{sdk.PortMesh: 20000}}
	select {
	case events <- sdk.WatchEvent{Snapshot: sdk.Snapshot{Instances: []sdk.Instance{in}}}:
	case <-ctx.Done():
		return nil
	}
	if f.mode == "watcherr" {
		return errors.New("lost the scheduler")
	}
	if f.mode == "logs" || f.mode == "panic" { // logging_test.go
		l := sdk.Logger()
		l.Debug("plugin debug")
		l.Info("plugin info")
		fmt.Fprintln(os.Stderr, "a raw line")
		l.Warn("plugin warn", "env", os.Getenv(plugins.LogLevelEnv))
		if f.mode == "panic" {
			panic("plugin exploded")
		}
	}
	<-ctx.Done()
	return nil
}

func (f *fake) Close() error {
	if f.marker == "" {
		return nil
	}
	return os.WriteFile(f.marker, []byte("closed"), 0o600)
}

// supervised runs Supervise on this binary in mode until the test ends.
type supervised struct {
	updates  chan host.Update
	statuses chan host.Status
	cancel   context.CancelFunc
	done     chan error
	marker   string
	sup      *host.Supervisor
}

func supervise(t *testing.T, mode string) *supervised {
	t.Helper()
	s := &supervised{
		updates:  make(chan host.Update, 100),
		statuses: make(chan host.Status, 1000),
		done:     make(chan error, 1),
		marker:   t.TempDir() + "/closed",
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	opts := host.Options{
		Name: "fake",
		Command: func() *exec.Cmd {
			cmd := exec.Command(os.Args[0])
			cmd.Env = []string{modeEnv + "=" + mode, markerEnv + "=" + s.marker}
			return cmd
		},
		Checksum: func() ([]byte, error) {
			switch mode {
			case "wrongsum": // pinned to another binary
				sum := sha256.Sum256([]byte("another binary"))
				return sum[:], nil
			case "nopin":
				return nil, errors.New("no pin for this plugin")
			}
			return host.FileChecksum(os.Args[0])
		},
		Request:    plugins.ConfigureRequest{Source: "/nowhere/instances.json", Options: map[string]string{"level": "2"}},
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
	}
	if mode == "badoption" {
		opts.Request.Options = map[string]string{"level": "high"}
	}
	sup, err := host.New(opts)
	if err != nil {
		cancel()
		t.Fatalf("host.New: %v", err)
	}
	s.sup = sup
	go func() { s.done <- sup.Run(ctx, s.updates, func(st host.Status) { s.statuses <- st }) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels Supervise and waits for it to return.
func (s *supervised) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok && err != nil {
			t.Errorf("Supervise returned %v after cancel, want nil", err)
		}
		if ok {
			close(s.done)
		}
	case <-time.After(wait):
		t.Fatal("Supervise did not return within", wait, "of cancel")
	}
}

// waitStatus reads statuses until one satisfies ok.
func (s *supervised) waitStatus(t *testing.T, what string, ok func(host.Status) bool) host.Status {
	t.Helper()
	timeout := time.After(wait)
	var last host.Status
	for {
		select {
		case st := <-s.statuses:
			if st.Adapter != "fake" {
				t.Fatalf("status for adapter %q, want fake", st.Adapter)
			}
			if ok(st) {
				return st
			}
			last = st
		case <-timeout:
			t.Fatalf("no status with %s within %v; last: %+v", what, wait, last)
		}
	}
}

func (s *supervised) waitUpdate(t *testing.T) host.Update {
	t.Helper()
	select {
	case u := <-s.updates:
		return u
	case <-time.After(wait):
		t.Fatal("no update within", wait)
	}
	return host.Update{}
}

func TestSuperviseForwardsAndShutsDownGracefully(t *testing.T) {
	s := supervise(t, "good")
	u := s.waitUpdate(t)
	if u.Adapter != "fake" || u.Snapshot.Adapter != "fake" {
		t.Errorf("update names adapter %q, snapshot %q; want fake for both", u.Adapter, u.Snapshot.Adapter)
	}
	if len(u.Snapshot.Instances) != 1 || u.Snapshot.Instances[0].ID != "a" {
		t.Errorf("snapshot instances = %+v, want [a]", u.Snapshot.Instances)
	}
	st := s.waitStatus(t, "the plugin's info", func(st host.Status) bool { return st.Info != nil })
	if !st.Running || st.Pid <= 0 || st.Info.Name != "fake" || st.Restarts != 0 {
		t.Errorf("status = %+v, want running, a pid, info of fake, no restarts", st)
	}

	s.stop(t)
	if _, err := os.Stat(s.marker); err != nil {
		t.Errorf("plugin's Close was not called on shutdown: %v", err)
	}
	last := s.waitStatus(t, "the plugin stopped", func(st host.Status) bool { return !st.Running })
	if last.Pid != 0 {
		t.Errorf("final status has pid %d, want 0", last.Pid)
	}
}

func TestHandleVerifyIdentity(t *testing.T) {
	ctx := context.Background()
	req := &plugins.VerifyIdentityRequest{InstanceID: "a", Credential: "good"}
	idle, err := host.New(host.Options{Name: "idle", Command: func() *exec.Cmd { return exec.Command("true") },
		Checksum: func() ([]byte, error) { return host.FileChecksum("/bin/true") }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.VerifyIdentity(ctx, req); !errors.Is(err, host.ErrNotRunning) {
		t.Errorf("a supervisor with no plugin: %v, want ErrNotRunning", err)
	}

	s := supervise(t, "verifier")
	s.waitUpdate(t) // configured and watching: the supervisor has the plugin
	got, err := s.sup.VerifyIdentity(ctx, req)
	if err != nil || got.Service != "web" || got.InstanceID != "a" {
		t.Fatalf("VerifyIdentity = %+v, %v; want instance a of web", got, err)
	}
	req.Credential = "forged"
	if _, err := s.sup.VerifyIdentity(ctx, req); err == nil || !strings.Contains(err.Error(), "refused by the fake scheduler") {
		t.Errorf("a forged credential: %v, want the adapter's refusal", err)
	}

	plain := supervise(t, "good")
	plain.waitUpdate(t)
	if _, err := plain.sup.VerifyIdentity(ctx, req); err == nil || !strings.Contains(err.Error(), "cannot verify scheduler credentials") {
		t.Errorf("an adapter without the capability: %v", err)
	}
}

func TestSuperviseFailures(t *testing.T) {
	tests := []struct {
		mode       string
		wantErr    []string // in Status.LastError
		wantUpdate bool     // at least one snapshot before the failure
	}{
		{mode: "badconfig", wantErr: []string{"Source not found", "/nowhere/instances.json", "--adapter fake="}},
		{mode: "oldversion", wantErr: []string{"protocol version 0", "plugins/sdk"}},
		{mode: "watcherr", wantErr: []string{"lost the scheduler"}, wantUpdate: true},
		{mode: "wrongsum", wantErr: []string{"not the binary that was pinned", "this one has", "do not run it"}},
		{mode: "nopin", wantErr: []string{"no pin for this plugin"}},
		{mode: "badoption", wantErr: []string{`checking the options of adapter "fake"`, `option level (int) = "high"`, "--adapter-option fake.NAME=VALUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			s := supervise(t, tt.mode)
			st := s.waitStatus(t, "two restarts", func(st host.Status) bool { return st.Restarts >= 2 && st.LastError != "" })
			for _, w := range tt.wantErr {
				if !strings.Contains(st.LastError, w) {
					t.Errorf("LastError %q does not contain %q", st.LastError, w)
				}
			}
			s.stop(t)
			close(s.updates)
			n := 0
			for u := range s.updates {
				n++
				if len(u.Snapshot.Instances) == 0 {
					t.Errorf("an empty snapshot was sent: %+v", u)
				}
			}
			if tt.wantUpdate && n < 2 {
				t.Errorf("%d updates, want one per run (at least 2)", n)
			}
			if !tt.wantUpdate && n != 0 {
				t.Errorf("%d updates from a plugin that never configured, want 0", n)
			}
		})
	}
}

func TestSuperviseOptions(t *testing.T) {
	cmd := func() *exec.Cmd { return exec.Command("true") }
	sum := func() ([]byte, error) { return host.FileChecksum("/bin/true") }
	tests := []struct {
		name    string
		opts    host.Options
		updates chan host.Update
		want    string
	}{
		{name: "no name", opts: host.Options{Command: cmd}, updates: make(chan host.Update), want: "missing Name"},
		{name: "no command", opts: host.Options{Name: "x"}, updates: make(chan host.Update), want: "missing Command"},
		{name: "no checksum", opts: host.Options{Name: "x", Command: cmd}, updates: make(chan host.Update), want: "missing Checksum"},
		{name: "no channel", opts: host.Options{Name: "x", Command: cmd, Checksum: sum}, want: "missing updates channel"},
		{name: "backoff upside down", opts: host.Options{Name: "x", Command: cmd, Checksum: sum, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, updates: make(chan host.Update), want: "not a range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := host.Supervise(ctx, tt.opts, tt.updates, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Supervise = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// outageWatch is the outage mode's watch: sdk.Loop, resyncing often, with
// a scheduler that answers, fails once, then answers again.
func outageWatch(ctx context.Context, events chan<- sdk.WatchEvent) error {
	fetches := 0
	loop := sdk.Loop[int]{
		Fetch: func(context.Context) (int, error) {
			fetches++
			if fetches == 2 {
				return 0, errors.New("dial tcp 127.0.0.1:4646: connection refused")
			}
			return fetches, nil
		},
		Translate: func(int) (sdk.Snapshot, []sdk.Diagnostic) {
			in := sdk.Instance{ID: "a", Service: "web", Address: "127.0.0.1", Ports: map[string]int{sdk.PortMesh: 20000}}
			return sdk.Snapshot{Instances: []sdk.Instance{in}}, []sdk.Diagnostic{
				sdk.Droppedf("task-b", sdk.ReasonNoMeshPort, "task task-b skipped", "it has no port named mesh"),
			}
		},
		Resync:  20 * time.Millisecond,
		Backoff: backoff.New(10*time.Millisecond, 10*time.Millisecond),
		Failing: func(err error, retry time.Duration) sdk.Diagnostic {
			return sdk.Warningf("Scheduler does not answer", "%v; retrying in %v", err, retry)
		},
	}
	return loop.Run(ctx, sdk.NewSignal(), events)
}

// An adapter that cannot read its scheduler shows it in Status with its
// time, until a snapshot comes without it; the instances its diagnostics
// say it dropped reach the snapshot's Dropped.
func TestSourceErrorAndDropped(t *testing.T) {
	s := supervise(t, "outage")
	u := s.waitUpdate(t)
	want := []model.Dropped{{Adapter: "fake", Instance: "task-b", Reason: model.ReasonNoMeshPort, Detail: "task task-b skipped: it has no port named mesh"}}
	if len(u.Snapshot.Dropped) != 1 || u.Snapshot.Dropped[0] != want[0] {
		t.Fatalf("Snapshot.Dropped = %+v, want %+v", u.Snapshot.Dropped, want)
	}
	before := time.Now()
	failing := s.waitStatus(t, "the source error", func(st host.Status) bool { return st.SourceError != "" })
	if !strings.Contains(failing.SourceError, "Scheduler does not answer: dial tcp 127.0.0.1:4646: connection refused") {
		t.Errorf("SourceError = %q, want the Failing diagnostic", failing.SourceError)
	}
	if failing.SourceErrorAt.IsZero() || failing.SourceErrorAt.Before(before.Add(-time.Second)) {
		t.Errorf("SourceErrorAt = %v, want about %v", failing.SourceErrorAt, before)
	}
	if failing.LastError != "" {
		t.Errorf("LastError = %q: a source error is no plugin failure", failing.LastError)
	}
	cleared := s.waitStatus(t, "the source error cleared", func(st host.Status) bool { return st.SourceError == "" })
	if !cleared.SourceErrorAt.IsZero() {
		t.Errorf("SourceErrorAt = %v after the recovery, want zero", cleared.SourceErrorAt)
	}
}
