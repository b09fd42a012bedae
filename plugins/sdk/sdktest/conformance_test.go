package sdktest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// source is an in-memory scheduler: the instance IDs it runs.
type source struct {
	mu      sync.Mutex
	ids     []string
	changed chan struct{} // closed and replaced on every change
}

func newSource(ids ...string) *source { return &source{ids: ids, changed: make(chan struct{})} }

func (s *source) get() ([]string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids, s.changed
}

func (s *source) set(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = ids
	close(s.changed)
	s.changed = make(chan struct{})
}

// memAdapter reports the instances of the source named "mem"; the broken
// field breaks one rule of the suite.
type memAdapter struct {
	src    *source
	broken string
}

func (a *memAdapter) Info(context.Context) (*plugins.InfoResponse, error) {
	v := plugins.ProtocolVersion
	if a.broken == "version" {
		v++
	}
	return &plugins.InfoResponse{Name: "mem", ProtocolVersion: v}, nil
}

func (a *memAdapter) Configure(_ context.Context, req *plugins.ConfigureRequest) (*plugins.ConfigureResponse, error) {
	if req.Source != "mem" && a.broken != "accepts-bad" {
		return &plugins.ConfigureResponse{Diagnostics: []plugins.Diagnostic{{Summary: "Unknown source", Detail: req.Source + " is not mem"}}}, nil
	}
	return &plugins.ConfigureResponse{}, nil
}

func (a *memAdapter) Watch(ctx context.Context, _ *plugins.WatchRequest, events chan<- plugins.WatchEvent) error {
	for {
		ids, changed := a.src.get()
		var snap model.Snapshot
		for _, id := range ids {
			in := model.Instance{ID: id, Service: "web", Address: "127.0.0.1", Ports: map[string]int{model.PortMesh: 20000}}
			if a.broken == "invalid" {
				in.Address = "not an ip"
			}
			snap.Instances = append(snap.Instances, in)
		}
		if a.broken == "extra" {
			snap.Instances = append(snap.Instances, model.Instance{ID: "zz", Service: "web", Address: "127.0.0.1", Ports: map[string]int{model.PortMesh: 1}})
		}
		select {
		case events <- plugins.WatchEvent{Snapshot: snap}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func fixtureFor(src *source) func(t *testing.T) sdktest.Fixture {
	return func(t *testing.T) sdktest.Fixture {
		src.set("a", "b")
		return sdktest.Fixture{
			Good:    &plugins.ConfigureRequest{Source: "mem"},
			Bad:     &plugins.ConfigureRequest{Source: "elsewhere"},
			WantIDs: []string{"b", "a"},
			Change: func(t *testing.T) []string {
				src.set("c")
				return []string{"c"}
			},
		}
	}
}

func TestRunInMemory(t *testing.T) {
	src := newSource()
	sdktest.Run(t, sdktest.InMemory(func() plugins.Adapter { return &memAdapter{src: src} }), fixtureFor(src))
}

// brokenEnv makes TestBrokenHelper run the suite against a broken adapter.
const brokenEnv = "WEFT_CONFORMANCE_BROKEN"

func TestBrokenHelper(t *testing.T) {
	broken := os.Getenv(brokenEnv)
	if broken == "" {
		t.Skip("runs only as a child of TestRunCatchesBrokenAdapters")
	}
	src := newSource()
	fixture := func(t *testing.T) sdktest.Fixture {
		f := fixtureFor(src)(t)
		f.Change = nil // a broken adapter would make Change wait its full timeout
		return f
	}
	sdktest.Run(t, sdktest.InMemory(func() plugins.Adapter { return &memAdapter{src: src, broken: broken} }), fixture)
}

// TestRunCatchesBrokenAdapters runs the suite against adapters that each
// break one rule, in a child process, and checks that it fails, saying why.
func TestRunCatchesBrokenAdapters(t *testing.T) {
	tests := []struct {
		broken string
		want   string
	}{
		{broken: "version", want: "reports protocol version 2"},
		{broken: "accepts-bad", want: "want an error diagnostic"},
		{broken: "invalid", want: "snapshot holds an invalid instance"},
		{broken: "extra", want: "want [a b]"},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenHelper$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tt.broken)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("suite against a %q adapter: %v, want a failure\n%s", tt.broken, err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("suite output does not say %q:\n%s", tt.want, out)
			}
		})
	}
}
