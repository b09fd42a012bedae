package mesos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/weftmesh/weft/core/backoff"
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

// options is the schema of the adapter's options (Info), which the host
// checks the operator's --adapter-option mesos.NAME=VALUE against.
var options = []sdk.OptionSpec{
	{Name: OptionUser, Type: sdk.OptionString, Description: "the principal for the master's HTTP authentication"},
	{Name: OptionPassword, Type: sdk.OptionString, Description: "its secret (password_file keeps it out of the process list)"},
	{Name: OptionPasswordFile, Type: sdk.OptionString, Description: "a file holding the secret; it wins over password"},
	{Name: OptionEncoding, Type: sdk.OptionEnum, Values: []string{"json", "protobuf"}, Default: "json",
		Description: "how the operator API's calls and events are encoded"},
}

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

	mu   sync.Mutex
	cfg  *config
	live *watcher // the running Watch, whose cache VerifyIdentity reads
}

type config struct {
	masters    string
	user, pass string
	media      string
	joinKey    []byte // checks node-proxy tokens (nodeproxy.go)
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
	return &sdk.InfoResponse{Name: Name, Version: a.Version, ProtocolVersion: sdk.ProtocolVersion, Options: options,
		Capabilities: []string{sdk.CapVerifiesIdentity}}, nil
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
	opts, optDiags := sdk.ParseOptions(options, req.Options)
	diags = append(diags, optDiags...)
	cfg := &config{masters: req.Source, user: opts.String(OptionUser), pass: opts.String(OptionPassword), media: mediaJSON,
		joinKey: req.Mesh.JoinKey}
	if opts.Given(OptionPasswordFile) {
		v := opts.String(OptionPasswordFile)
		if b, err := os.ReadFile(v); err != nil {
			bad("Cannot read the Mesos password file", fmt.Sprintf("reading %s: %v", v, err))
		} else {
			cfg.pass = strings.TrimRight(string(b), "\r\n")
		}
	}
	if opts.String(OptionEncoding) == "protobuf" {
		cfg.media = mediaProtobuf
	}
	for _, k := range opts.Unknown() {
		bad("Unknown Mesos adapter option", fmt.Sprintf("option %q is not one of user, password, password_file, encoding", k))
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
// stream, reconnecting with backoff when either fails, while an sdk.Loop
// translates the state after every change and sends it. It returns an
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
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &watcher{a: a, c: newClient(masters, cfg.user, cfg.pass, cfg.media), changed: sdk.NewSignal()}
	a.mu.Lock()
	a.live = w
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.live == w {
			a.live = nil
		}
		a.mu.Unlock()
	}()
	go func() { cancel(w.follow(ctx)) }()
	loop := sdk.Loop[*State]{Fetch: w.fetch, Translate: Translate, Log: a.log, Failing: func(err error, retry time.Duration) sdk.Diagnostic {
		return sdk.Warningf("Mesos master lost",
			"%v. The last snapshot stays in force until the adapter reads the master's state again; retrying in %v.", err, retry)
	}}
	err = loop.Run(ctx, w.changed, out)
	if cause := context.Cause(ctx); errors.Is(cause, ErrUnauthorized) {
		return cause
	}
	return err
}

// watcher is one Watch call's state.
type watcher struct {
	a       *Adapter
	c       *client
	changed sdk.Signal // the state changed

	mu    sync.Mutex
	state *State // nil until the first GET_STATE
	// lost is why the last session with the master ended, until the next
	// one has read the master's state: fetch fails with it meanwhile, so
	// the outage shows in status (LAST ERROR) instead of only in the log.
	lost error
}

// follow runs sessions until ctx ends, reconnecting with backoff. It
// returns nil when ctx ends, and an error when the master refuses the
// credentials.
func (w *watcher) follow(ctx context.Context) error {
	b := backoff.New(w.a.minBackoff, w.a.maxBackoff)
	for {
		progressed, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrUnauthorized) {
			return fmt.Errorf("watching Mesos: %w", err)
		}
		if progressed {
			b.Reset()
		}
		d := b.Next()
		w.a.log.Warn("lost the Mesos master; reconnecting", "error", err, "backoff", d)
		w.mu.Lock()
		w.lost = fmt.Errorf("reading the Mesos master: %w", err)
		w.mu.Unlock()
		w.changed.Notify()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// fetch is the loop's copy of the state: the maps are copied, the tasks
// in them are not (Apply replaces a task, it never changes one in place).
func (w *watcher) fetch(context.Context) (*State, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost != nil {
		return nil, w.lost
	}
	if w.state == nil {
		return nil, errors.New("no state read from the Mesos master yet")
	}
	return &State{Tasks: maps.Clone(w.state.Tasks), Agents: maps.Clone(w.state.Agents), Frameworks: maps.Clone(w.state.Frameworks)}, nil
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
	w.mu.Lock()
	w.state, w.lost = state, nil
	w.mu.Unlock()
	w.changed.Notify()

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
			w.mu.Lock()
			if state.Apply(it.ev) {
				changed = true
			}
			w.mu.Unlock()
			select {
			case it = <-items:
				continue
			default:
			}
			break
		}
		if changed {
			w.changed.Notify()
		}
	}
}
