package conformance

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins"
)

// Fixture is what the suite runs an adapter against.
type Fixture struct {
	Good    *plugins.ConfigureRequest // a configuration under which the adapter reports WantIDs
	Bad     *plugins.ConfigureRequest // a broken configuration: Configure must answer with an error diagnostic, not a transport error or panic
	WantIDs []string                  // instance IDs expected in the first snapshot
	// Change, if set, changes the adapter's source and returns the instance IDs expected next.
	Change func(t *testing.T) []string
}

// Bounds on how long the suite waits.
const (
	callTimeout     = 20 * time.Second // Info, Configure
	snapshotTimeout = 20 * time.Second // a first or changed snapshot
	cancelTimeout   = 10 * time.Second // Watch returning after cancel
)

// Run runs the suite against adapters made by open (a fresh one per subtest) and fixtures made by fixture (fresh per subtest).
func Run(t *testing.T, open func(t *testing.T) plugins.Adapter, fixture func(t *testing.T) Fixture) {
	t.Run("Info", func(t *testing.T) {
		a := open(t)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		info, err := a.Info(ctx)
		if err != nil {
			t.Fatalf("Info: %v", err)
		}
		if err := plugins.CheckInfo(info); err != nil {
			t.Error(err)
		}
	})

	t.Run("ConfigureBad", func(t *testing.T) {
		f := fixture(t)
		if f.Bad == nil {
			t.Skip("the fixture has no Bad configuration")
		}
		diags := configure(t, open(t), f.Bad)
		i := slices.IndexFunc(diags, func(d plugins.Diagnostic) bool { return d.Severity == plugins.SeverityError })
		if i < 0 {
			t.Fatalf("Configure(Bad) answered %v, want an error diagnostic", diags)
		}
		if diags[i].Summary == "" {
			t.Errorf("error diagnostic %+v has no summary: say what is wrong", diags[i])
		}
	})

	t.Run("ConfigureGood", func(t *testing.T) {
		f := fixture(t)
		for _, d := range configure(t, open(t), good(t, f)) {
			if d.Severity == plugins.SeverityError {
				t.Errorf("Configure(Good) reported an error: %s: %s", d.Summary, d.Detail)
			}
		}
	})

	t.Run("FirstSnapshot", func(t *testing.T) {
		f := fixture(t)
		w := startWatch(t, open(t), good(t, f))
		checkIDs(t, "first snapshot", w.next(t), f.WantIDs)
	})

	t.Run("Change", func(t *testing.T) {
		f := fixture(t)
		if f.Change == nil {
			t.Skip("the fixture has no Change")
		}
		w := startWatch(t, open(t), good(t, f))
		checkIDs(t, "first snapshot", w.next(t), f.WantIDs)
		want := f.Change(t)
		// The adapter may send snapshots it took before the change: wait,
		// boundedly, for the new set.
		deadline := time.Now().Add(snapshotTimeout)
		for {
			ids := w.nextBefore(t, deadline)
			if ids == nil {
				t.Fatalf("no snapshot with instances %v within %v of the change", want, snapshotTimeout)
			}
			if slices.Equal(*ids, sorted(want)) {
				return
			}
		}
	})

	t.Run("CancelStopsWatch", func(t *testing.T) {
		f := fixture(t)
		w := startWatch(t, open(t), good(t, f))
		w.next(t)
		w.cancel()
		select {
		case <-w.done:
			if err := w.err; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v after cancel, want nil or context.Canceled", err)
			}
		case <-time.After(cancelTimeout):
			t.Fatalf("Watch did not return within %v of its ctx being cancelled", cancelTimeout)
		}
	})
}

func good(t *testing.T, f Fixture) *plugins.ConfigureRequest {
	t.Helper()
	if f.Good == nil {
		t.Fatal("the fixture has no Good configuration")
	}
	return f.Good
}

// configure calls Configure, failing the test on a transport error.
func configure(t *testing.T, a plugins.Adapter, req *plugins.ConfigureRequest) []plugins.Diagnostic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := a.Configure(ctx, req)
	if err != nil {
		t.Fatalf("Configure returned an error, want diagnostics: %v", err)
	}
	if resp == nil {
		t.Fatal("Configure returned no response")
	}
	return resp.Diagnostics
}

// watch is a running Watch whose snapshots the test reads.
type watch struct {
	events chan plugins.WatchEvent
	done   chan struct{} // closed when Watch has returned err
	err    error
	cancel context.CancelFunc
}

// startWatch configures a with req and starts its Watch, cancelled at test
// cleanup.
func startWatch(t *testing.T, a plugins.Adapter, req *plugins.ConfigureRequest) *watch {
	t.Helper()
	for _, d := range configure(t, a, req) {
		if d.Severity == plugins.SeverityError {
			t.Fatalf("Configure(Good) reported an error: %s: %s", d.Summary, d.Detail)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{events: make(chan plugins.WatchEvent), done: make(chan struct{}), cancel: cancel}
	go func() {
		w.err = a.Watch(ctx, &plugins.WatchRequest{}, w.events)
		close(w.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-w.done:
		case <-time.After(cancelTimeout):
			t.Errorf("Watch did not return within %v of its ctx being cancelled", cancelTimeout)
		}
	})
	return w
}

// next returns the sorted instance IDs of the next snapshot.
func (w *watch) next(t *testing.T) []string {
	t.Helper()
	ids := w.nextBefore(t, time.Now().Add(snapshotTimeout))
	if ids == nil {
		t.Fatalf("no snapshot within %v", snapshotTimeout)
	}
	return *ids
}

// nextBefore returns the sorted instance IDs of the next snapshot, or nil
// if none came before deadline. Every instance must be valid and every ID
// unique.
func (w *watch) nextBefore(t *testing.T, deadline time.Time) *[]string {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case ev := <-w.events:
		ids := []string{}
		for _, in := range ev.Snapshot.Instances {
			if err := in.Validate(); err != nil {
				t.Errorf("snapshot holds an invalid instance (skip it and report a warning diagnostic instead): %v", err)
			}
			ids = append(ids, in.ID)
		}
		slices.Sort(ids)
		if c := slices.Compact(slices.Clone(ids)); len(c) != len(ids) {
			t.Errorf("snapshot repeats instance IDs: %v", ids)
		}
		return &ids
	case <-w.done:
		t.Fatalf("Watch returned before sending a snapshot: %v", w.err)
	case <-timer.C:
	}
	return nil
}

func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, sorted(want)) {
		t.Errorf("%s: instance IDs %v, want %v", what, got, sorted(want))
	}
}

func sorted(ids []string) []string {
	s := append([]string{}, ids...)
	slices.Sort(s)
	return s
}
