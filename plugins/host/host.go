package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	plugin "github.com/hashicorp/go-plugin"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins"
)

// Options configures the supervision of one adapter plugin.
type Options struct {
	Name string // adapter name, e.g. "local" or "file"
	// Command returns a fresh command for each (re)start. go-plugin appends
	// the controller's environment and its handshake variables to cmd.Env.
	Command func() *exec.Cmd
	// Checksum returns the SHA-256 the binary that Command runs must have,
	// before each (re)start; go-plugin checks it (SecureConfig) and a
	// binary that does not match is refused. Required: FileChecksum of the
	// binary taken when the controller starts (a built-in adapter is the
	// controller's own binary), or Pin (a third-party one). An error
	// refuses that start, like a mismatch; both are retried.
	Checksum func() ([]byte, error)
	Request  plugins.ConfigureRequest
	// Logger gets the supervisor's log and, through HCLogger, go-plugin's
	// and the plugin's own. Default: slog.Default() with "adapter" Name.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait before a restart (defaults
	// 250ms and 30s). The wait doubles after each failure and goes back to
	// MinBackoff once a plugin has streamed snapshots for MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Update is one full snapshot from an adapter.
type Update struct {
	Adapter     string
	Snapshot    model.Snapshot
	Diagnostics []plugins.Diagnostic
}

// Status is the state of a supervised plugin, reported on every change.
type Status struct {
	Adapter string
	Pid     int  // the plugin process, 0 when none runs
	Running bool // a plugin process is up and has completed the handshake
	// Restarts counts the launches after the first one.
	Restarts int
	// LastError is the most recent failure of the plugin itself (a
	// crash, a refused configuration), kept after a recovery; LastErrorAt
	// is when it happened.
	LastError   string
	LastErrorAt time.Time
	// SourceError is what the adapter reports while it cannot read its
	// scheduler (unreachable, credentials refused): the diagnostic its
	// watch marks plugins.ReasonSourceFailing, as "summary: detail".
	// SourceErrorAt is when it was first reported in these words. Both
	// are cleared by the next snapshot without it.
	SourceError   string
	SourceErrorAt time.Time
	Info          *plugins.InfoResponse
}

// Defaults of Options.
const (
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// callTimeout bounds Info and Configure.
const callTimeout = time.Minute

// Supervisor supervises one adapter plugin: New checks the options, Run
// launches and supervises the plugin until ctx is done, and
// VerifyIdentity calls the plugin that runs at the time, for the
// controller's sidecar API.
type Supervisor struct {
	opts Options

	mu   sync.Mutex
	a    plugins.Adapter // the configured plugin, nil while none runs
	info *plugins.InfoResponse
}

// New returns a supervisor of the plugin opts describes, or an error for
// Options it cannot use.
func New(opts Options) (*Supervisor, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts.defaults()
	return &Supervisor{opts: opts}, nil
}

// Supervise is New and Run in one call, for a caller that needs no
// VerifyIdentity.
func Supervise(ctx context.Context, opts Options, updates chan<- Update, status func(Status)) error {
	s, err := New(opts)
	if err != nil {
		return err
	}
	return s.Run(ctx, updates, status)
}

// Run launches the plugin with AutoMTLS, negotiates the version, calls
// Info and checks the protocol version and the options the operator gave
// against the schema Info declares (a value that does not fit is a clear
// error, retried with backoff), Configure (error diagnostics -> a clear
// error, retried with backoff), then Watch, forwarding each event as an
// Update (Snapshot.Adapter set to Name). If the plugin process dies or
// Watch fails, it is restarted with exponential backoff (reset after a
// healthy period); nothing is sent meanwhile, so the last snapshot stays
// in force. Returns when ctx is done, after shutting the plugin down
// gracefully (client.Kill).
//
// Every failure, including a plugin of the wrong protocol version, is
// retried, so an operator can replace a plugin binary without restarting
// the controller; status (which may be nil) and the log say what failed.
// Run returns nil when ctx is done, and an error only for a missing
// updates channel. Call it once.
func (s *Supervisor) Run(ctx context.Context, updates chan<- Update, status func(Status)) error {
	if updates == nil {
		return fmt.Errorf("supervising adapter plugin %q: missing updates channel", s.opts.Name)
	}
	r := &run{sup: s, opts: s.opts, updates: updates, status: status}
	r.st.Adapter = s.opts.Name
	b := newBackoff(s.opts)
	for {
		healthy, err := r.once(ctx)
		if ctx.Err() != nil {
			r.report(func(st *Status) { st.Pid, st.Running = 0, false })
			return nil
		}
		if healthy {
			b.Reset()
		}
		d := b.Next()
		s.opts.Logger.Error("adapter plugin failed; restarting", "error", err, "backoff", d)
		r.report(func(st *Status) {
			st.Pid, st.Running, st.LastError, st.LastErrorAt = 0, false, err.Error(), time.Now()
		})
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		r.st.Restarts++
	}
}

// newBackoff is the wait before each restart.
func newBackoff(o Options) *backoff.Backoff { return backoff.New(o.MinBackoff, o.MaxBackoff) }

// ErrNotRunning is returned by VerifyIdentity while no plugin process runs
// (between a crash and its restart). Callers may retry.
var ErrNotRunning = errors.New("the adapter plugin is not running right now (it is being restarted); retry shortly")

// VerifyIdentity asks the running plugin what a scheduler credential
// proves.
func (s *Supervisor) VerifyIdentity(ctx context.Context, req *plugins.VerifyIdentityRequest) (*plugins.VerifyIdentityResponse, error) {
	s.mu.Lock()
	a, info := s.a, s.info
	s.mu.Unlock()
	if a == nil || info == nil {
		return nil, ErrNotRunning
	}
	if !info.Has(plugins.CapVerifiesIdentity) {
		return nil, fmt.Errorf("adapter %s cannot verify scheduler credentials (it does not announce %q); start the sidecar with a join token instead", info.Name, plugins.CapVerifiesIdentity)
	}
	v, ok := a.(plugins.IdentityVerifier)
	if !ok {
		return nil, fmt.Errorf("adapter %s announces %q but its client does not implement it", info.Name, plugins.CapVerifiesIdentity)
	}
	return v.VerifyIdentity(ctx, req)
}

func (s *Supervisor) set(a plugins.Adapter, info *plugins.InfoResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a, s.info = a, info
}

func (o *Options) check() error {
	var missing []string
	if o.Name == "" {
		missing = append(missing, "Name")
	}
	if o.Command == nil {
		missing = append(missing, "Command")
	}
	if o.Checksum == nil {
		missing = append(missing, "Checksum (the SHA-256 the plugin binary must have)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("supervising adapter plugin %q: missing %s", o.Name, strings.Join(missing, ", "))
	}
	if o.MinBackoff < 0 || o.MaxBackoff < 0 || (o.MaxBackoff > 0 && o.MinBackoff > o.MaxBackoff) {
		return fmt.Errorf("supervising adapter plugin %q: backoff %v..%v is not a range; set 0 < MinBackoff <= MaxBackoff, or leave both 0", o.Name, o.MinBackoff, o.MaxBackoff)
	}
	return nil
}

func (o *Options) defaults() {
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
		if o.MaxBackoff > 0 {
			o.MinBackoff = min(DefaultMinBackoff, o.MaxBackoff)
		}
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default().With("adapter", o.Name)
	}
}

// run is the state of one Run.
type run struct {
	sup     *Supervisor
	opts    Options
	updates chan<- Update
	status  func(Status)
	st      Status
	// sourceSummary is the summary of st.SourceError.
	sourceSummary string
}

func (s *run) report(change func(*Status)) {
	change(&s.st)
	if s.status == nil {
		return
	}
	st := s.st
	if st.Info != nil {
		info := *st.Info
		info.Capabilities = append([]string(nil), info.Capabilities...)
		st.Info = &info
	}
	s.status(st)
}

// once launches the plugin once and forwards its snapshots until it fails
// or ctx is done. healthy says whether it streamed for a healthy period.
func (s *run) once(ctx context.Context) (healthy bool, err error) {
	o := s.opts
	cmd := o.Command()
	if cmd == nil {
		return false, fmt.Errorf("starting adapter %q: Options.Command returned no command", o.Name)
	}
	sum, err := o.Checksum()
	if err != nil {
		return false, fmt.Errorf("starting adapter %q: %w", o.Name, err)
	}
	cmd.Env = append(cmd.Env, plugins.LogLevelEnv+"="+pluginLevel(o.Logger)) // slog.go
	cfg := plugins.ClientConfig(cmd, HCLogger(o.Logger))
	cfg.SyncStdout, cfg.SyncStderr = rawLines(o.Logger, "stdout"), rawLines(o.Logger, "stderr") // slog.go
	// A fresh hash each time: SecureConfig.Check writes into it.
	cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	client := plugin.NewClient(cfg)
	defer client.Kill() // graceful: the plugin closes what it started

	a, err := plugins.Dispense(client)
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		return false, checksumMismatch(o.Name, cmd.Path, sum)
	}
	if err != nil {
		return false, fmt.Errorf("starting adapter %q (%s): %w", o.Name, cmd.Path, err)
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	o.Logger.Info("adapter plugin started", "pid", pid, "path", cmd.Path, "restarts", s.st.Restarts)
	s.report(func(st *Status) { st.Pid, st.Running = pid, true })

	if err := s.configure(ctx, a); err != nil {
		return false, err
	}
	s.sup.set(a, s.st.Info)
	defer s.sup.set(nil, nil)
	return s.watch(ctx, a)
}

func (s *run) configure(ctx context.Context, a plugins.Adapter) error {
	o := s.opts
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	info, err := a.Info(callCtx)
	if err != nil {
		return fmt.Errorf("asking adapter %q for its info: %w", o.Name, err)
	}
	if err := plugins.CheckInfo(info); err != nil {
		return fmt.Errorf("checking adapter %q: %w", o.Name, err)
	}
	s.report(func(st *Status) { st.Info = info })
	if err := plugins.CheckOptions(info.Options, o.Request.Options); err != nil {
		return fmt.Errorf("checking the options of adapter %q: %w; fix the controller's --adapter-option %s.NAME=VALUE flags and it will be retried",
			o.Name, err, o.Name)
	}

	req := o.Request
	resp, err := a.Configure(callCtx, &req)
	if err != nil {
		return fmt.Errorf("configuring adapter %q: %w", o.Name, err)
	}
	var problems []string
	for _, d := range resp.Diagnostics {
		if d.Severity != plugins.SeverityError {
			o.Logger.Warn("adapter configuration warning", "summary", d.Summary, "detail", d.Detail)
			continue
		}
		problems = append(problems, diagString(d))
	}
	if len(problems) > 0 {
		return fmt.Errorf("configuring adapter %q with source %q: %s; fix the adapter's configuration (the controller's --adapter %s=... flag) and it will be retried",
			o.Name, o.Request.Source, strings.Join(problems, "; "), o.Name)
	}
	return nil
}

func (s *run) watch(ctx context.Context, a plugins.Adapter) (healthy bool, err error) {
	o := s.opts
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan plugins.WatchEvent)
	done := make(chan error, 1)
	go func() { done <- a.Watch(wctx, &plugins.WatchRequest{}, events) }()

	var since time.Time // first snapshot
	isHealthy := func() bool { return !since.IsZero() && time.Since(since) >= o.MaxBackoff }
	for {
		select {
		case ev := <-events:
			if since.IsZero() {
				since = time.Now()
			}
			ev.Snapshot.Adapter = o.Name
			ev.Snapshot.Dropped = dropped(o.Name, ev.Diagnostics)
			for _, d := range ev.Diagnostics {
				o.Logger.Warn("adapter reported a problem", "severity", severityString(d.Severity), "summary", d.Summary, "detail", d.Detail)
			}
			s.noteSourceError(ev.Diagnostics)
			select {
			case s.updates <- Update{Adapter: o.Name, Snapshot: ev.Snapshot, Diagnostics: ev.Diagnostics}:
			case <-ctx.Done():
				cancel()
				<-done
				return isHealthy(), nil
			}
		case err := <-done:
			if ctx.Err() != nil {
				return isHealthy(), nil
			}
			if err == nil {
				err = errors.New("the adapter ended its watch without an error, which it must not do while the controller runs")
			}
			return isHealthy(), fmt.Errorf("watching adapter %q: %w", o.Name, err)
		}
	}
}

// noteSourceError records the diagnostic an event carries while the
// adapter cannot read its scheduler, or clears it when the event has none.
// Its time is when a failure with that summary was first reported: a
// detail that only counts the retries does not move it.
func (s *run) noteSourceError(diags []plugins.Diagnostic) {
	msg, summary := "", ""
	for _, d := range diags {
		if d.Reason == plugins.ReasonSourceFailing {
			msg, summary = diagString(d), d.Summary
		}
	}
	if msg == s.st.SourceError {
		return
	}
	s.report(func(st *Status) {
		switch {
		case msg == "":
			st.SourceErrorAt, s.sourceSummary = time.Time{}, ""
		case summary != s.sourceSummary:
			st.SourceErrorAt, s.sourceSummary = time.Now(), summary
		}
		st.SourceError = msg
	})
}

// dropped lists the instances the diagnostics say the adapter left out.
func dropped(adapter string, diags []plugins.Diagnostic) []model.Dropped {
	var out []model.Dropped
	for _, d := range diags {
		if d.Instance == "" || d.Reason == plugins.ReasonSourceFailing {
			continue
		}
		reason := d.Reason
		if reason == "" {
			reason = model.ReasonAdapterSkipped
		}
		out = append(out, model.Dropped{Adapter: adapter, Instance: d.Instance, Reason: reason, Detail: diagString(d)})
	}
	return out
}

func diagString(d plugins.Diagnostic) string {
	if d.Detail == "" {
		return d.Summary
	}
	return d.Summary + ": " + d.Detail
}

func severityString(s plugins.Severity) string {
	if s == plugins.SeverityWarning {
		return "warning"
	}
	return "error"
}
