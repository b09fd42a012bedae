package sdktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
)

// Bounds on how long the helpers wait.
const (
	// CallTimeout bounds Info and Configure.
	CallTimeout = 20 * time.Second
	// SnapshotTimeout bounds the wait for a first or changed snapshot.
	SnapshotTimeout = 20 * time.Second
	// CancelTimeout bounds how long Watch may take to return after its
	// ctx is cancelled.
	CancelTimeout = 10 * time.Second
)

// Configure calls a.Configure and returns its diagnostics, failing the
// test on a transport error or a missing response: problems with a
// configuration travel as diagnostics.
func Configure(t testing.TB, a sdk.Adapter, req *sdk.ConfigureRequest) []sdk.Diagnostic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
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

// ConfigureOK configures a with req and fails the test on an error
// diagnostic. It returns the warnings.
func ConfigureOK(t testing.TB, a sdk.Adapter, req *sdk.ConfigureRequest) []sdk.Diagnostic {
	t.Helper()
	diags := Configure(t, a, req)
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			t.Fatalf("Configure reported an error: %s: %s", d.Summary, d.Detail)
		}
	}
	return diags
}

// Watcher is a running Watch whose events a test reads.
type Watcher struct {
	// Events carries what Watch sends; it is buffered, so that the adapter
	// does not wait for the test.
	Events chan sdk.WatchEvent
	// CancelTimeout, if not 0, replaces the package's CancelTimeout for
	// this Watch. Set it before the test ends.
	CancelTimeout time.Duration
	// WantNil, set before the test ends, requires Watch to return exactly
	// nil after its ctx is cancelled; otherwise context.Canceled passes
	// too.
	WantNil bool

	done   chan struct{} // closed when Watch has returned err
	err    error
	cancel context.CancelFunc
}

// Watch starts a.Watch (configure a first) and returns its events. At test
// cleanup its ctx is cancelled, and it must return within CancelTimeout
// with nil or context.Canceled (any error, if it had returned on its own
// before: the test has judged that).
func Watch(t testing.TB, a sdk.Adapter) *Watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{Events: make(chan sdk.WatchEvent, 100), done: make(chan struct{}), cancel: cancel}
	go func() {
		w.err = a.Watch(ctx, &sdk.WatchRequest{}, w.Events)
		close(w.done)
	}()
	t.Cleanup(func() {
		var before bool // Watch returned on its own: the test judged its error
		select {
		case <-w.done:
			before = true
		default:
		}
		if err, ok := w.Stop(); !ok {
			t.Errorf("Watch did not return within %v of its ctx being cancelled", w.cancelTimeout())
		} else if err != nil && (w.WantNil || (!before && !errors.Is(err, context.Canceled))) {
			t.Errorf("Watch returned %v after its ctx was cancelled, want nil", err)
		}
	})
	return w
}

func (w *Watcher) cancelTimeout() time.Duration {
	if w.CancelTimeout > 0 {
		return w.CancelTimeout
	}
	return CancelTimeout
}

// Stop cancels Watch's ctx and waits, at most CancelTimeout, for it to
// return. ok is false if it did not; err is what it returned.
func (w *Watcher) Stop() (err error, ok bool) {
	w.cancel()
	select {
	case <-w.done:
		return w.err, true
	case <-time.After(w.cancelTimeout()):
		return nil, false
	}
}

// Done is closed when Watch has returned; Err then says what it returned.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err is what Watch returned, once Done is closed.
func (w *Watcher) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

// NextBefore returns the next event, or false if none came before
// deadline. Watch returning first fails the test.
func (w *Watcher) NextBefore(t testing.TB, deadline time.Time) (sdk.WatchEvent, bool) {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case ev := <-w.Events:
		return ev, true
	case <-w.done:
		t.Fatalf("Watch returned before sending a snapshot: %v", w.err)
	case <-timer.C:
	}
	return sdk.WatchEvent{}, false
}

// Next returns the next event, failing the test if none comes within
// SnapshotTimeout.
func (w *Watcher) Next(t testing.TB) sdk.WatchEvent {
	t.Helper()
	ev, ok := w.NextBefore(t, time.Now().Add(SnapshotTimeout))
	if !ok {
		t.Fatalf("no snapshot within %v", SnapshotTimeout)
	}
	return ev
}

// WaitFor reads events until ok accepts one, and fails the test, with the
// last event read, if none does within timeout. what says what ok wants.
func (w *Watcher) WaitFor(t testing.TB, what string, timeout time.Duration, ok func(sdk.WatchEvent) bool) sdk.WatchEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last sdk.WatchEvent
	for {
		ev, got := w.NextBefore(t, deadline)
		if !got {
			t.Fatalf("no snapshot with %s within %v; last one: %+v", what, timeout, last)
		}
		if ok(ev) {
			return ev
		}
		last = ev
	}
}

// FirstEvent runs a.Watch (configure a first) until its first snapshot,
// stops it and returns the snapshot.
func FirstEvent(t testing.TB, a sdk.Adapter) sdk.WatchEvent {
	t.Helper()
	w := Watch(t, a)
	ev := w.Next(t)
	if _, ok := w.Stop(); !ok {
		t.Errorf("Watch did not return within %v of cancel", w.cancelTimeout())
	}
	return ev
}

// WaitFor reads events from any channel of them (a Watcher's Events, or
// snapshots a test gathers another way) until ok accepts one, and fails
// the test, with the last event read, if none does within timeout.
func WaitFor(t testing.TB, events <-chan sdk.WatchEvent, what string, timeout time.Duration, ok func(sdk.WatchEvent) bool) sdk.WatchEvent {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var last sdk.WatchEvent
	for {
		select {
		case ev := <-events:
			if ok(ev) {
				return ev
			}
			last = ev
		case <-deadline.C:
			t.Fatalf("no snapshot with %s within %v; last one: %+v", what, timeout, last)
		}
	}
}
