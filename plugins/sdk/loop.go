package sdk

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/core/model"
)

// Default bounds of Loop.Backoff.
const (
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Loop is the watch loop of an adapter: what its Watch runs after setting
// up whatever reports changes (an event stream, informers, its own
// processes). Every built-in adapter uses it, so that all of them wait,
// translate, deduplicate and retry the same way:
//
//	change signal -> debounce -> Fetch -> Translate -> dedupe -> send
//	                               | error
//	                               +-> backoff, then Fetch again
//
// S is the adapter's state: what Fetch reads (a scheduler's lists, an
// informer cache, a copy of the adapter's own view) and Translate turns
// into a snapshot. Fetch hands the state over: the loop reads it from
// another goroutine than the one that changes the adapter's own copy.
type Loop[S any] struct {
	// Fetch reads the state. An error is retried with Backoff (meanwhile
	// the last snapshot stays in force); an error made with Stop ends Run.
	Fetch func(ctx context.Context) (S, error)
	// Translate turns the state into the snapshot to send and the
	// problems to report with it (records skipped, warnings). It should be
	// pure: the same state gives the same event.
	Translate func(S) (Snapshot, []Diagnostic)
	// Debounce is how long the loop gathers further change signals after
	// the first before it fetches: one fetch for a burst of events. 0
	// fetches at once.
	Debounce time.Duration
	// Resync, if not 0, fetches that often even without a change signal.
	Resync time.Duration
	// Backoff paces the fetches after a failed one; it is reset by a
	// successful fetch. Default: backoff.New(DefaultMinBackoff,
	// DefaultMaxBackoff).
	Backoff *backoff.Backoff
	// Failing, if set, is the diagnostic sent with the last snapshot while
	// fetches fail: the snapshot stays in force and the operator learns
	// why it may be stale. Without it nothing is sent while failing. Run
	// marks it with ReasonSourceFailing: the controller shows it in
	// `weft status` as the adapter's LAST ERROR, with its time, until a
	// snapshot arrives without it.
	Failing func(err error, retryIn time.Duration) Diagnostic
	// Log, if set, gets a failed fetch (once, until it fails otherwise or
	// succeeds), and each diagnostic when it first appears (not again with
	// every snapshot that still carries it).
	Log hclog.Logger
}

// Signal is a change signal for Loop.Run: Notify never blocks, and the
// notifications that arrive while the loop is busy coalesce into one.
type Signal chan struct{}

// NewSignal returns a Signal.
func NewSignal() Signal { return make(Signal, 1) }

// Notify signals a change.
func (s Signal) Notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// stopError ends a Loop: see Stop.
type stopError struct{ err error }

func (e stopError) Error() string {
	if e.err == nil {
		return "the adapter's watch is over"
	}
	return e.err.Error()
}

func (e stopError) Unwrap() error { return e.err }

// Stop wraps what Fetch returns to end Loop.Run, which then returns err
// (nil: the watch is over, for example because the adapter was closed).
func Stop(err error) error { return stopError{err: err} }

// Run runs the loop until ctx is done or Fetch returns an error made with
// Stop. It fetches after every signal on changes (give a Signal, notified
// once at the start if the first snapshot should not wait for a change),
// after every Resync, and after a failure's backoff. A snapshot equal to
// the last one sent, with the same diagnostics, is not sent again. Run
// returns nil when ctx is done, and otherwise what Stop carried.
func (l *Loop[S]) Run(ctx context.Context, changes <-chan struct{}, events chan<- WatchEvent) error {
	if l.Fetch == nil || l.Translate == nil {
		return errors.New("running the adapter's watch loop: Loop needs Fetch and Translate")
	}
	b := l.Backoff
	if b == nil {
		b = backoff.New(DefaultMinBackoff, DefaultMaxBackoff)
	}
	var resync <-chan time.Time
	if l.Resync > 0 {
		t := time.NewTicker(l.Resync)
		defer t.Stop()
		resync = t.C
	}
	retry := time.NewTimer(0)
	if !retry.Stop() {
		<-retry.C
	}
	defer retry.Stop()
	var (
		sent    *WatchEvent // the last event sent
		good    *WatchEvent // the last event of a successful fetch
		lastErr string      // the failure last logged, "" after a success
	)
	send := func(ev WatchEvent) bool {
		if sent != nil && sameEvent(*sent, ev) {
			return true
		}
		l.logNew(sent, ev.Diagnostics)
		select {
		case events <- ev:
			sent = &ev
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-retry.C:
		case <-resync:
		}
		retry.Stop()
		if l.Debounce > 0 {
			t := time.NewTimer(l.Debounce)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			select {
			case <-changes:
			default:
			}
		}
		st, err := l.Fetch(ctx)
		if err != nil {
			var stop stopError
			if errors.As(err, &stop) {
				return stop.err
			}
			if ctx.Err() != nil {
				return nil
			}
			d := b.Next()
			if l.Log != nil && err.Error() != lastErr {
				l.Log.Warn("reading the adapter's source failed; keeping the last snapshot and retrying", "retry_in", d, "error", err)
			}
			lastErr = err.Error()
			if good != nil && l.Failing != nil {
				ev := *good
				fail := l.Failing(err, d)
				fail.Reason = ReasonSourceFailing
				ev.Diagnostics = append(append([]Diagnostic{}, good.Diagnostics...), fail)
				if !send(ev) {
					return nil
				}
			}
			retry.Reset(d)
			continue
		}
		b.Reset()
		lastErr = ""
		snap, diags := l.Translate(st)
		ev := WatchEvent{Snapshot: snap, Diagnostics: diags}
		good = &ev
		if !send(ev) {
			return nil
		}
	}
}

// sameEvent says whether a and b carry the same snapshot and diagnostics,
// the instances compared field by field (model.Instance.Equal: a nil and
// an empty map the same, as on the wire), in a fraction of what
// reflect.DeepEqual takes over ten thousand of them.
// The same list (an adapter that returns its last state again, unchanged)
// is equal without a look at its elements, as reflect.DeepEqual has it.
func sameEvent(a, b WatchEvent) bool {
	ai, bi := a.Snapshot.Instances, b.Snapshot.Instances
	return a.Snapshot.Adapter == b.Snapshot.Adapter && len(ai) == len(bi) &&
		(len(ai) == 0 || &ai[0] == &bi[0] || slices.EqualFunc(ai, bi, model.Instance.Equal)) &&
		reflect.DeepEqual(a.Snapshot.Dropped, b.Snapshot.Dropped) &&
		slices.Equal(a.Diagnostics, b.Diagnostics)
}

// logNew logs the diagnostics of diags that the last event sent did not
// carry.
func (l *Loop[S]) logNew(sent *WatchEvent, diags []Diagnostic) {
	if l.Log == nil {
		return
	}
	before := map[Diagnostic]bool{}
	if sent != nil {
		for _, d := range sent.Diagnostics {
			before[d] = true
		}
	}
	for _, d := range diags {
		if before[d] {
			continue
		}
		if d.Severity == SeverityError {
			l.Log.Error(d.Summary, "detail", d.Detail)
		} else {
			l.Log.Warn(d.Summary, "detail", d.Detail)
		}
	}
}
