package sdktest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Fixture is what the suite runs an adapter against.
type Fixture struct {
	Good    *sdk.ConfigureRequest // a configuration under which the adapter reports WantIDs
	Bad     *sdk.ConfigureRequest // a broken configuration: Configure must answer with an error diagnostic, not a transport error or panic
	WantIDs []string              // instance IDs expected in the first snapshot
	// Change, if set, changes the adapter's source and returns the instance IDs expected next.
	Change func(t *testing.T) []string
}

// Run runs the suite against adapters made by open (a fresh one per subtest) and fixtures made by fixture (fresh per subtest).
func Run(t *testing.T, open func(t *testing.T) sdk.Adapter, fixture func(t *testing.T) Fixture) {
	t.Run("Info", func(t *testing.T) {
		a := open(t)
		ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
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
		diags := Configure(t, open(t), f.Bad)
		i := slices.IndexFunc(diags, func(d sdk.Diagnostic) bool { return d.Severity == sdk.SeverityError })
		if i < 0 {
			t.Fatalf("Configure(Bad) answered %v, want an error diagnostic", diags)
		}
		if diags[i].Summary == "" {
			t.Errorf("error diagnostic %+v has no summary: say what is wrong", diags[i])
		}
	})

	t.Run("ConfigureGood", func(t *testing.T) {
		f := fixture(t)
		for _, d := range Configure(t, open(t), good(t, f)) {
			if d.Severity == sdk.SeverityError {
				t.Errorf("Configure(Good) reported an error: %s: %s", d.Summary, d.Detail)
			}
		}
	})

	t.Run("FirstSnapshot", func(t *testing.T) {
		f := fixture(t)
		w := startWatch(t, open(t), good(t, f))
		checkIDs(t, "first snapshot", ids(t, w.Next(t)), f.WantIDs)
	})

	t.Run("Change", func(t *testing.T) {
		f := fixture(t)
		if f.Change == nil {
			t.Skip("the fixture has no Change")
		}
		w := startWatch(t, open(t), good(t, f))
		checkIDs(t, "first snapshot", ids(t, w.Next(t)), f.WantIDs)
		want := f.Change(t)
		// The adapter may send snapshots it took before the change: wait,
		// boundedly, for the new set.
		deadline := time.Now().Add(SnapshotTimeout)
		for {
			ev, ok := w.NextBefore(t, deadline)
			if !ok {
				t.Fatalf("no snapshot with instances %v within %v of the change", want, SnapshotTimeout)
			}
			if slices.Equal(ids(t, ev), sorted(want)) {
				return
			}
		}
	})

	t.Run("CancelStopsWatch", func(t *testing.T) {
		f := fixture(t)
		w := startWatch(t, open(t), good(t, f))
		w.Next(t)
		err, ok := w.Stop()
		if !ok {
			t.Fatalf("Watch did not return within %v of its ctx being cancelled", CancelTimeout)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v after cancel, want nil or context.Canceled", err)
		}
	})
}

func good(t *testing.T, f Fixture) *sdk.ConfigureRequest {
	t.Helper()
	if f.Good == nil {
		t.Fatal("the fixture has no Good configuration")
	}
	return f.Good
}

// startWatch configures a with req and starts its Watch, cancelled at test
// cleanup.
func startWatch(t *testing.T, a sdk.Adapter, req *sdk.ConfigureRequest) *Watcher {
	t.Helper()
	for _, d := range Configure(t, a, req) {
		if d.Severity == sdk.SeverityError {
			t.Fatalf("Configure(Good) reported an error: %s: %s", d.Summary, d.Detail)
		}
	}
	return Watch(t, a)
}

// ids returns the sorted instance IDs of a snapshot. Every instance must
// be valid and every ID unique.
func ids(t *testing.T, ev sdk.WatchEvent) []string {
	t.Helper()
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
	return ids
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
