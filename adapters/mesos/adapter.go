package mesos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Name is the adapter's name in snapshots and Info.
const Name = "mesos"

// Configuration options (ConfigureRequest.Options).
const (
	OptionUser         = "user"
	OptionPassword     = "password"
	OptionPasswordFile = "password_file"
	OptionEncoding     = "encoding" // json or protobuf
)

// defaultHeartbeat is assumed until SUBSCRIBED says otherwise (the real
// master's interval).
const defaultHeartbeat = 15 * time.Second

// Adapter is the Mesos adapter. Create it with New.
type Adapter struct {
	// Version is what Info reports; cmd/weft sets the build's version.
	Version string

	log hclog.Logger

	// Timings; tests shorten them.
	minBackoff, maxBackoff time.Duration
	callTimeout            time.Duration // bound on GET_STATE and on opening SUBSCRIBE
	missedHeartbeats       int           // a stream silent for this many intervals is dead

	mu  sync.Mutex
	cfg *config
}

type config struct {
	masters    string
	user, pass string
	media      string
}

// New returns a Mesos adapter that logs with the plugin SDK's logger.
func New() *Adapter { return newAdapter(sdk.Logger().Named(Name)) }

func newAdapter(log hclog.Logger) *Adapter {
	// At most 5 s between tries: a master that comes back is read again
	// within 5 s.
	return &Adapter{Version: "dev", log: log, minBackoff: 200 * time.Millisecond, maxBackoff: 5 * time.Second,
		callTimeout: 30 * time.Second, missedHeartbeats: 3}
}

// Info describes the adapter.
func (a *Adapter) Info(context.Context) (*sdk.InfoResponse, error) {
	return &sdk.InfoResponse{Name: Name, Version: a.Version, ProtocolVersion: sdk.ProtocolVersion}, nil
}

// Configure checks the masters' URLs and the options. It does not call
// the master: one that is down now may be up when Watch starts.
func (a *Adapter) Configure(_ context.Context, req *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
	var diags []sdk.Diagnostic
	bad := func(summary, detail string) {
		diags = append(diags, sdk.Errorf(summary, "%s", detail))
	}
	if _, err := parseMasters(req.Source); err != nil {
		bad("Bad Mesos master address", err.Error())
	}
	cfg := &config{masters: req.Source, user: req.Options[OptionUser], pass: req.Options[OptionPassword], media: mediaJSON}
	for k, v := range req.Options {
		switch k {
		case OptionUser, OptionPassword:
		case OptionPasswordFile:
			b, err := os.ReadFile(v)
			if err != nil {
				bad("Cannot read the Mesos password file", fmt.Sprintf("reading %s: %v", v, err))
				continue
			}
			cfg.pass = strings.TrimRight(string(b), "\r\n")
		case OptionEncoding:
			switch v {
			case "json":
				cfg.media = mediaJSON
			case "protobuf":
				cfg.media = mediaProtobuf
			default:
				bad("Unknown Mesos encoding", fmt.Sprintf("option encoding = %q: use json or protobuf", v))
			}
		default:
			bad("Unknown Mesos adapter option", fmt.Sprintf("option %q is not one of user, password, password_file, encoding", k))
		}
	}
	if cfg.pass != "" && cfg.user == "" {
		bad("Mesos password without a user", "set the user option too, or drop the password")
	}
	if len(diags) > 0 {
		return &sdk.ConfigureResponse{Diagnostics: diags}, nil
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	return &sdk.ConfigureResponse{}, nil
}

// Watch follows the cluster until ctx ends: GET_STATE, then the SUBSCRIBE
// stream, reconnecting with backoff when either fails. It returns an
// error only when the master refuses the credentials.
func (a *Adapter) Watch(ctx context.Context, _ *sdk.WatchRequest, out chan<- sdk.WatchEvent) error {
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	if cfg == nil {
		return errors.New("watching Mesos: Configure has not succeeded")
	}
	masters, err := parseMasters(cfg.masters)
	if err != nil {
		return fmt.Errorf("watching Mesos: %w", err)
	}
	w := &watcher{a: a, c: newClient(masters, cfg.user, cfg.pass, cfg.media), out: out}
	backoff := a.minBackoff
	for {
		progressed, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrUnauthorized) {
			return fmt.Errorf("watching Mesos: %w", err)
		}
		if progressed {
			backoff = a.minBackoff
		}
		a.log.Warn("lost the Mesos master; reconnecting", "error", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, a.maxBackoff)
	}
}

// watcher is one Watch call's state.
type watcher struct {
	a    *Adapter
	c    *client
	out  chan<- sdk.WatchEvent
	sent *sdk.WatchEvent // the last event sent
}

// session runs GET_STATE then SUBSCRIBE until something fails.
// progressed reports that the stream was established.
func (w *watcher) session(ctx context.Context) (progressed bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, w.a.callTimeout)
	gs, err := w.c.getState(cctx)
	cancel()
	if err != nil {
		return false, err
	}
	state := NewState(gs)
	if err := w.send(ctx, state); err != nil {
		return false, err
	}

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	// The stream lives as long as sctx; the open is bounded by a timer.
	opened := make(chan struct{})
	openTimer := time.AfterFunc(w.a.callTimeout, func() {
		select {
		case <-opened:
		default:
			stop()
		}
	})
	stream, err := w.c.subscribe(sctx)
	close(opened)
	openTimer.Stop()
	if err != nil {
		return false, err
	}
	defer stream.close()

	// A watchdog cuts the stream when it has been silent for too long.
	heartbeat := defaultHeartbeat
	alive := make(chan time.Duration, 1)
	go func() {
		limit := time.Duration(w.a.missedHeartbeats) * heartbeat
		t := time.NewTimer(limit)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case d := <-alive:
				if d > 0 {
					limit = time.Duration(w.a.missedHeartbeats) * d
				}
				t.Reset(limit) // since Go 1.23, Reset drops a stale fire

			case <-t.C:
				w.a.log.Warn("no event or heartbeat from the Mesos master; reconnecting", "silent_for", limit)
				stop()
				return
			}
		}
	}()
	// Events are read ahead, so that a burst (SUBSCRIBED and the events
	// right after it, a failing agent's tasks) is applied as a whole and
	// translated once.
	type item struct {
		ev  *master.Event
		err error
	}
	items := make(chan item, 256)
	go func() {
		for {
			ev, err := stream.next()
			select {
			case items <- item{ev, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var it item
		select {
		case it = <-items:
		case <-sctx.Done():
			it = item{err: errors.New("the event stream was cut")}
		}
		changed := false
		for {
			if it.err != nil {
				err := it.err
				if ctx.Err() == nil && sctx.Err() != nil {
					err = fmt.Errorf("no heartbeat from the master for %d intervals: %w", w.a.missedHeartbeats, err)
				}
				return progressed, err
			}
			var hb time.Duration
			if it.ev.Type == master.Event_SUBSCRIBED {
				progressed = true
				if s := it.ev.GetSubscribed().GetHeartbeatIntervalSeconds(); s > 0 {
					hb = time.Duration(s * float64(time.Second))
				}
			}
			select {
			case alive <- hb:
			default:
			}
			if state.Apply(it.ev) {
				changed = true
			}
			select {
			case it = <-items:
				continue
			default:
			}
			break
		}
		if changed {
			if err := w.send(ctx, state); err != nil {
				return progressed, err
			}
		}
	}
}

// send translates the state and sends it if it differs from the last.
func (w *watcher) send(ctx context.Context, s *State) error {
	ins, diags := Translate(s)
	ev := sdk.WatchEvent{Snapshot: model.Snapshot{Adapter: Name, Instances: ins}, Diagnostics: diags}
	if w.sent != nil && reflect.DeepEqual(*w.sent, ev) {
		return nil
	}
	// Log a problem when it appears, not with every snapshot after.
	before := map[sdk.Diagnostic]bool{}
	if w.sent != nil {
		for _, d := range w.sent.Diagnostics {
			before[d] = true
		}
	}
	for _, d := range diags {
		if !before[d] {
			w.a.log.Warn(d.Summary, "detail", d.Detail)
		}
	}
	select {
	case w.out <- ev:
		w.sent = &ev
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
