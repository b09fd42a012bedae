package sdk_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/plugins/sdk"
)

// script is a scheduler for Loop tests: each Fetch takes the next step.
type script struct {
	fetches atomic.Int32
	steps   chan step
	called  chan struct{} // one value per Fetch, sent as it starts
}

func newScript() *script {
	return &script{steps: make(chan step, 10), called: make(chan struct{}, 100)}
}

// waitFetches waits until n more fetches have started.
func (s *script) waitFetches(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.called:
		case <-time.After(wait):
			t.Fatal("no Fetch within", wait)
		}
	}
}

type step struct {
	ids []string
	err error
}

func (s *script) fetch(ctx context.Context) ([]string, error) {
	s.fetches.Add(1)
	s.called <- struct{}{}
	select {
	case st := <-s.steps:
		return st.ids, st.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func translateIDs(ids []string) (sdk.Snapshot, []sdk.Diagnostic) {
	var snap sdk.Snapshot
	for _, id := range ids {
		snap.Instances = append(snap.Instances, sdk.Instance{ID: id, Service: "web"})
	}
	return snap, nil
}

func next(t *testing.T, events <-chan sdk.WatchEvent) sdk.WatchEvent {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(wait):
		t.Fatal("no event within", wait)
	}
	return sdk.WatchEvent{}
}

// TestLoopDedupesAndRetries: a snapshot equal to the last is not sent
// again; a failed fetch sends the last snapshot with the Failing warning,
// and the next good fetch sends the snapshot again without it; Stop ends
// the loop with its error.
func TestLoopDedupesAndRetries(t *testing.T) {
	s := newScript()
	failing := sdk.Warningf("Scheduler down", "retrying")
	l := sdk.Loop[[]string]{
		Fetch:     s.fetch,
		Translate: translateIDs,
		Backoff:   backoff.New(time.Millisecond, time.Millisecond),
		Failing:   func(error, time.Duration) sdk.Diagnostic { return failing },
	}
	changed := sdk.NewSignal()
	events := make(chan sdk.WatchEvent, 10)
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background(), changed, events) }()

	s.steps <- step{ids: []string{"a"}}
	changed.Notify()
	if ev := next(t, events); len(ev.Snapshot.Instances) != 1 || len(ev.Diagnostics) != 0 {
		t.Fatalf("first event %+v, want instance a and no diagnostic", ev)
	}

	// The same snapshot is not sent again: the next event is the change
	// after it.
	s.steps <- step{ids: []string{"a"}}
	changed.Notify()
	s.waitFetches(t, 2) // the signal is taken: signalling again now would fold into it
	s.steps <- step{ids: []string{"a", "b"}}
	changed.Notify()
	if ev := next(t, events); len(ev.Snapshot.Instances) != 2 {
		t.Fatalf("event %+v, want the change to a and b (an unchanged snapshot was sent again?)", ev)
	}

	s.steps <- step{err: errors.New("connection refused")}
	s.steps <- step{ids: []string{"a", "b"}} // the retry after the backoff
	changed.Notify()
	marked := failing
	marked.Reason = sdk.ReasonSourceFailing // Run marks it, for the controller's LAST ERROR
	if ev := next(t, events); len(ev.Snapshot.Instances) != 2 || len(ev.Diagnostics) != 1 || ev.Diagnostics[0] != marked {
		t.Fatalf("event while failing %+v, want the last snapshot and the Failing warning, marked %s", ev, sdk.ReasonSourceFailing)
	}
	if ev := next(t, events); len(ev.Snapshot.Instances) != 2 || len(ev.Diagnostics) != 0 {
		t.Fatalf("event after recovery %+v, want the snapshot again without the warning", ev)
	}

	stop := errors.New("credentials refused")
	s.steps <- step{err: sdk.Stop(stop)}
	changed.Notify()
	select {
	case err := <-done:
		if !errors.Is(err, stop) {
			t.Errorf("Run returned %v, want %v", err, stop)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after Stop")
	}
}

// TestLoopDebounces: a change signalled while the loop waits out its
// Debounce is folded into the same fetch.
func TestLoopDebounces(t *testing.T) {
	s := newScript()
	s.steps <- step{ids: []string{"a"}}
	l := sdk.Loop[[]string]{Fetch: s.fetch, Translate: translateIDs, Debounce: 500 * time.Millisecond}
	changes := make(chan struct{}) // unbuffered: each send waits for the loop to take it
	events := make(chan sdk.WatchEvent, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, changes, events) }()
	changes <- struct{}{} // starts the debounce
	changes <- struct{}{} // taken by the debounce's drain, not by a second fetch
	next(t, events)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after cancel")
	}
	// A second signal taken outside the debounce would have started a
	// second Fetch, which counts before it waits for ctx.
	if n := s.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for two changes within the debounce, want 1", n)
	}
}
