package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/core/backoff"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// runnerConfig holds what the runner needs besides the instance specs.
type runnerConfig struct {
	DataDir   string
	StateFile string
	// Token mints a fresh join token for an instance's sidecar; it is
	// called at every sidecar start.
	Token func(spec instanceSpec) (string, error)
	// NodeToken mints a fresh token for a shared proxy (nodeproxy.go),
	// whose slot stands for slot (sharedSlotSpec): a node token, or an
	// application token; it is called at every start of one.
	NodeToken func(slot instanceSpec) (string, error)
	// Grace is how long a process has between SIGTERM and SIGKILL.
	Grace time.Duration
	// Poll is how often the liveness of adopted processes is checked.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart; it doubles
	// per crash and resets once a process has run for StableAfter.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	Log                                 hclog.Logger
	// Cred returns the credential a process of an instance starts with
	// (kind "app" or "proxy"), or nil to start it as the adapter runs. A
	// process of an earlier run is adopted only if it runs with that gid.
	Cred func(spec instanceSpec, kind string) (*syscall.Credential, error)
}

// runner supervises the processes of every instance: it starts (or adopts)
// each instance's app and sidecar, restarts them when they exit, records
// them in the state file, and announces every change.
type runner struct {
	cfg runnerConfig

	applyMu sync.Mutex // serialises apply and close

	mu      sync.Mutex
	insts   map[string]*instance
	shared  map[string]*slot      // the shared proxies (node proxy, application proxies), by slot ID
	prev    map[string]stateEntry // from the state file, until the first apply
	changed chan struct{}         // closed and replaced on every change
	diags   []sdk.Diagnostic      // problems sent with every snapshot
	closed  bool
	done    chan struct{} // closed when close has finished
}

type instance struct {
	spec instanceSpec
	app  *slot
	// proxy is the instance's sidecar, or the runner's shared slot for a
	// node-mode or application-mode instance (kind "node"), which the
	// instance does not own.
	proxy *slot
	check *checkRun // nil: no check declared
}

// slot is one supervised process (an app or a sidecar). A slot is replaced,
// never restarted with another spec.
type slot struct {
	kind string // "app", "proxy" or "node" (a shared proxy)
	spec procSpec
	// inst is the instance as the slot was created. Its identity (ID,
	// service, namespace) is in the slot's spec, so it cannot change
	// without the slot being replaced.
	inst instanceSpec

	stop chan struct{} // closed to stop the process for good
	done chan struct{} // closed when the supervising goroutine has ended

	// guarded by runner.mu
	pid     int
	running bool
	starts  int
	// served are the instances a shared proxy (kind "node") serves, as
	// its serve file lists them.
	served []serveItem

	fileMu sync.Mutex // serialises writes of a shared proxy's serve file
}

// instanceStatus is what translate needs of one instance.
type instanceStatus struct {
	Spec         instanceSpec
	AppPID       int
	AppRunning   bool
	ProxyPID     int
	ProxyRunning bool
	Restarts     int
	// Check is the last result of the instance's check (Spec.Check), if
	// it declares one.
	Check checkResult
	// Isolation is set by the adapter from its guard, not by the runner.
	Isolation model.Isolation
}

func newRunner(cfg runnerConfig, prev map[string]stateEntry) *runner {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	return &runner{
		cfg:     cfg,
		insts:   map[string]*instance{},
		shared:  map[string]*slot{},
		prev:    prev,
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// apply makes the running instances match specs: it stops the processes of
// instances no longer declared and those whose command changed, then
// starts (or, on the first apply, adopts) what is missing.
func (r *runner) apply(specs []instanceSpec) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	want := map[string]bool{}
	for _, s := range specs {
		want[s.ID] = true
	}
	var stopping []*slot
	for id, in := range r.insts {
		if !want[id] {
			stopping = append(stopping, in.app)
			if in.proxy.kind == "proxy" {
				stopping = append(stopping, in.proxy)
			}
			stopCheck(in.check)
			delete(r.insts, id)
		}
	}
	type startReq struct {
		s     *slot
		adopt int
	}
	var starting []startReq
	var stale []stateProc // processes of an earlier run to stop
	// The shared proxies (the node proxy, the application proxies): each
	// replaced when its command line or its group changes, stopped when
	// it serves no instance. An instance that joins or leaves one changes
	// its serve file only, written again below (nodeproxy.go). They are
	// never adopted: one of an earlier run is stopped.
	wantShared := sharedProxySpecs(specs)
	var rewrite []*slot
	for id, sl := range r.shared {
		if _, ok := wantShared[id]; !ok {
			stopping = append(stopping, sl)
			delete(r.shared, id)
		}
	}
	for id, first := range wantShared {
		sl := r.shared[id]
		served := serveItems(specs, id)
		if sl != nil && sl.spec.hash() == first.Proxy.hash() && sl.inst.ProxyAddr == first.ProxyAddr {
			if !slices.Equal(sl.served, served) {
				sl.served = served
				rewrite = append(rewrite, sl)
			}
			continue
		}
		if sl != nil {
			stopping = append(stopping, sl)
		}
		r.shared[id] = newSlot("node", first.Proxy, sharedSlotSpec(first))
		r.shared[id].served = served // start writes its serve file
		starting = append(starting, startReq{r.shared[id], 0})
	}
	for _, spec := range specs {
		in, ok := r.insts[spec.ID]
		if ok && spec.sharedSlotID() != "" {
			shared := r.shared[spec.sharedSlotID()]
			if in.app.spec.hash() != spec.App.hash() {
				stopping = append(stopping, in.app)
				in.app = newSlot("app", spec.App, spec)
				starting = append(starting, startReq{in.app, 0})
			}
			if in.proxy != shared {
				if in.proxy.kind == "proxy" {
					stopping = append(stopping, in.proxy)
				}
				in.proxy = shared
			}
			if !sameCheck(in.spec, spec) {
				stopCheck(in.check)
				r.startCheckLocked(in, spec)
			}
			in.spec = spec
			continue
		}
		if !ok {
			in = &instance{spec: spec, app: newSlot("app", spec.App, spec), proxy: newSlot("proxy", spec.Proxy, spec)}
			if id := spec.sharedSlotID(); id != "" {
				in.proxy = r.shared[id]
			}
			r.insts[spec.ID] = in
			r.startCheckLocked(in, spec)
			// A process of an earlier run is adopted if it runs what we
			// would start; if it runs something else (the command line or
			// environment changed meanwhile), it is stopped and replaced.
			var appPID, proxyPID int
			if e, ok := r.prev[spec.ID]; ok {
				switch {
				case e.Address == spec.Address && adoptable(e.App, spec.App) && r.gidOK(spec, "app", e.App.PID):
					appPID = e.App.PID
				case held(e.App):
					stale = append(stale, e.App)
				}
				switch {
				case spec.sharedSlotID() != "":
					if held(e.Proxy) {
						stale = append(stale, e.Proxy)
					}
				case e.Address == spec.Address && adoptable(e.Proxy, spec.Proxy) && r.gidOK(spec, "proxy", e.Proxy.PID):
					proxyPID = e.Proxy.PID
				case held(e.Proxy):
					stale = append(stale, e.Proxy)
				}
			}
			// An adopted process runs already: say so in the snapshots from
			// now on, not only once its supervisor starts, or the first
			// snapshot after a restart would call a live instance critical
			// and every caller would drop it for a moment.
			if appPID != 0 {
				in.app.pid, in.app.running = appPID, true
			}
			if proxyPID != 0 {
				in.proxy.pid, in.proxy.running = proxyPID, true
			}
			starting = append(starting, startReq{in.app, appPID})
			if in.proxy.kind == "proxy" {
				starting = append(starting, startReq{in.proxy, proxyPID})
			}
			continue
		}
		if in.app.spec.hash() != spec.App.hash() {
			stopping = append(stopping, in.app)
			in.app = newSlot("app", spec.App, spec)
			starting = append(starting, startReq{in.app, 0})
		}
		if in.proxy.kind == "node" || in.proxy.spec.hash() != spec.Proxy.hash() {
			if in.proxy.kind == "proxy" {
				stopping = append(stopping, in.proxy)
			}
			in.proxy = newSlot("proxy", spec.Proxy, spec)
			starting = append(starting, startReq{in.proxy, 0})
		}
		if !sameCheck(in.spec, spec) {
			stopCheck(in.check)
			r.startCheckLocked(in, spec)
		}
		in.spec = spec // a slot keeps the spec it was started with
	}
	// Processes of an earlier run whose instances are no longer declared
	// would hold their addresses and ports for ever: stop them too.
	for id, e := range r.prev {
		if !want[id] {
			for _, p := range []stateProc{e.App, e.Proxy} {
				if held(p) {
					stale = append(stale, p)
				}
			}
		}
	}
	r.prev = nil
	stale = distinctProcs(stale) // shared-proxy entries share their proxy
	r.changedLocked()
	r.mu.Unlock()

	var wg sync.WaitGroup
	for _, s := range stopping {
		wg.Add(1)
		go func() { defer wg.Done(); close(s.stop); <-s.done }()
	}
	for _, p := range stale {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.cfg.Log.Info("stopping a process of an earlier run: its instance is gone or now runs differently", "pid", p.PID, "command", p.Argv[0])
			terminate(p.PID, pollExit(p.PID, r.cfg.Poll, nil), r.cfg.Grace, r.cfg.Log)
		}()
	}
	wg.Wait()
	for _, sl := range rewrite {
		if err := r.writeServed(sl); err != nil {
			// The proxy keeps serving what it served; the next change
			// writes the file again.
			r.cfg.Log.Error("cannot update a shared proxy's instances", "proxy", sl.inst.ID, "error", err)
		}
	}
	for _, st := range starting {
		go r.supervise(st.s, st.adopt)
	}
}

// writeServed writes the serve file of a shared proxy with its instances
// and a fresh token (each (token, instance) pair admits once).
func (r *runner) writeServed(s *slot) error {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	r.mu.Lock()
	served := slices.Clone(s.served)
	r.mu.Unlock()
	tok, err := r.cfg.NodeToken(s.inst)
	if err != nil {
		return fmt.Errorf("minting the node token: %w", err)
	}
	return writeServeFile(layout{r.cfg.DataDir}.serveFile(s.inst.ID), serveFile{Token: tok, Instances: served})
}

// sharedAddrs returns the address whose group each shared proxy runs
// with, by slot ID (planInput.PrevShared).
func (r *runner) sharedAddrs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.shared))
	for id, sl := range r.shared {
		out[id] = sl.inst.ProxyAddr
	}
	return out
}

// gidOK reports whether the process pid of an earlier run runs with the
// gid a process of kind would be started with now; one that does not (it
// was started without the guard, or with another address) is replaced, so
// the guard's rules hold for it.
func (r *runner) gidOK(spec instanceSpec, kind string, pid int) bool {
	if r.cfg.Cred == nil {
		return true
	}
	c, err := r.cfg.Cred(spec, kind)
	if err != nil || c == nil {
		return err == nil
	}
	g, err := procGID(pid)
	return err == nil && g == c.Gid
}

// baseEnv is the adapter's environment without what go-plugin set for the
// adapter itself (its magic cookie, PLUGIN_*): apps and sidecars are no
// plugins.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if sdk.PluginEnv(k) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func newSlot(kind string, spec procSpec, inst instanceSpec) *slot {
	return &slot{kind: kind, spec: spec, inst: inst, stop: make(chan struct{}), done: make(chan struct{})}
}

// supervise runs one slot until it is stopped: it adopts adoptPID (if not
// zero) or starts the process, waits for it to exit, and starts it again
// after a backoff.
func (r *runner) supervise(s *slot, adoptPID int) {
	defer close(s.done)
	log := r.cfg.Log.With("instance", s.inst.ID, "process", s.kind)
	b := backoff.New(r.cfg.MinBackoff, r.cfg.MaxBackoff)
	pid := adoptPID
	var startErr error // the last start that failed, logged with the wait
	for {
		var exited <-chan struct{}
		if pid != 0 {
			log.Info("adopted a running process of an earlier adapter", "pid", pid)
			exited = pollExit(pid, r.cfg.Poll, s.stop)
		} else {
			cmd, err := r.start(s)
			if err != nil {
				startErr = err
			} else {
				pid = cmd.Process.Pid
				ch := make(chan struct{})
				go func() {
					err := cmd.Wait()
					log.Warn("process exited", "pid", cmd.Process.Pid, "status", exitStatus(err))
					close(ch)
				}()
				exited = ch
				log.Info("started process", "pid", pid)
			}
		}
		startedAt := time.Now()
		if exited != nil {
			r.setProc(s, pid, true)
			select {
			case <-exited:
				r.setProc(s, pid, false)
			case <-s.stop:
				terminate(pid, exited, r.cfg.Grace, log)
				r.setProc(s, pid, false)
				return
			}
			if time.Since(startedAt) >= r.cfg.StableAfter {
				b.Reset()
			}
		}
		pid = 0
		d := b.Next()
		if startErr != nil {
			log.Error("cannot start process; retrying", "error", startErr, "in", d)
			startErr = nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return
		}
	}
}

// start starts the slot's process in a process group of its own, so that
// it outlives the adapter and is stopped as a whole.
func (r *runner) start(s *slot) (*exec.Cmd, error) {
	env := append(baseEnv(), s.spec.Env...)
	if s.kind == "node" {
		if err := r.writeServed(s); err != nil {
			return nil, err
		}
	}
	if s.kind == "proxy" {
		tok, err := r.cfg.Token(s.inst)
		if err != nil {
			return nil, err
		}
		env = append(env, "WEFT_JOIN_TOKEN="+tok)
		if err := os.MkdirAll(layout{r.cfg.DataDir}.proxyDir(s.inst.ID), 0o700); err != nil {
			return nil, fmt.Errorf("creating sidecar data directory: %w", err)
		}
	}
	logf, err := os.OpenFile(s.spec.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log file: %w", err)
	}
	defer logf.Close()
	attr := &syscall.SysProcAttr{Setpgid: true}
	if r.cfg.Cred != nil {
		kind := s.kind
		if kind == "node" {
			kind = "proxy" // a shared proxy runs with the group of its ProxyAddr's sidecar
		}
		c, err := r.cfg.Cred(s.inst, kind)
		if err != nil {
			return nil, fmt.Errorf("choosing the process's group: %w", err)
		}
		attr.Credential = c
	}
	cmd := &exec.Cmd{
		Path:        s.spec.Argv[0],
		Args:        s.spec.Argv,
		Env:         env,
		Dir:         s.spec.Dir,
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: attr,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.spec.Argv[0], err)
	}
	return cmd, nil
}

// setProc records a slot's process and announces the change.
func (r *runner) setProc(s *slot, pid int, running bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.pid, s.running = pid, running
	if running {
		s.starts++
	}
	if s.kind == "app" {
		// A result is the app process's: a new one is probed afresh.
		for _, in := range r.insts {
			if in.app == s && in.check != nil {
				in.check.result = checkResult{}
			}
		}
	}
	if !r.closed {
		r.changedLocked()
	}
}

// changedLocked saves the state file (if the runner has one: the
// checker's tests have none) and wakes every watcher.
func (r *runner) changedLocked() {
	if r.cfg.StateFile != "" {
		if err := writeState(r.cfg.StateFile, r.entriesLocked()); err != nil {
			r.cfg.Log.Error("cannot save state; a restarted adapter will not adopt the running instances", "error", err)
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *runner) entriesLocked() []stateEntry {
	out := make([]stateEntry, 0, len(r.insts))
	for _, in := range r.insts {
		e := stateEntry{
			ID: in.spec.ID, Service: in.spec.Service, Namespace: in.spec.Namespace,
			Address: in.spec.Address, Ports: in.spec.Ports(),
			App:   procEntry(in.app),
			Proxy: procEntry(in.proxy),
		}
		if in.check != nil {
			e.Check = in.check.result.Status
		}
		out = append(out, e)
	}
	return out
}

func procEntry(s *slot) stateProc {
	p := stateProc{Argv: s.spec.Argv, Hash: s.spec.hash()}
	if s.running {
		p.PID = s.pid
	}
	return p
}

// setDiags replaces the problems reported with every snapshot.
func (r *runner) setDiags(ds []sdk.Diagnostic) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || reflect.DeepEqual(r.diags, ds) {
		return
	}
	r.diags = slices.Clone(ds)
	close(r.changed)
	r.changed = make(chan struct{})
}

// poke wakes every watcher: something outside the runner (the guard)
// changed what a snapshot says.
func (r *runner) poke() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// current returns the state entries of the running instances and their
// IDs.
func (r *runner) current() (map[string]stateEntry, map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries := map[string]stateEntry{}
	ids := map[string]bool{}
	for _, e := range r.entriesLocked() {
		entries[e.ID] = e
		ids[e.ID] = true
	}
	return entries, ids
}

// changes returns the channel that is closed on the next change, and
// whether the runner is closed (the channel is then closed already).
func (r *runner) changes() (<-chan struct{}, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed, r.closed
}

// view returns every instance's status, the problems to report, the
// channel that is closed on the next change, and whether the runner is
// closed.
func (r *runner) view() ([]instanceStatus, []sdk.Diagnostic, <-chan struct{}, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, nil, true
	}
	out := make([]instanceStatus, 0, len(r.insts))
	for _, in := range r.insts {
		st := instanceStatus{Spec: in.spec, AppRunning: in.app.running, ProxyRunning: in.proxy.running}
		if in.app.running {
			st.AppPID = in.app.pid
		}
		if in.proxy.running {
			st.ProxyPID = in.proxy.pid
		}
		st.Restarts = max(in.app.starts-1, 0) + max(in.proxy.starts-1, 0)
		if in.check != nil {
			st.Check = in.check.result
		}
		out = append(out, st)
	}
	return out, slices.Clone(r.diags), r.changed, false
}

// close stops every process the runner started or adopted and removes the
// state file. It is idempotent and returns when everything has stopped.
func (r *runner) close() error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return nil
	}
	var slots []*slot
	var checks []*checkRun
	for _, sl := range r.shared {
		slots = append(slots, sl)
	}
	for _, in := range r.insts {
		slots = append(slots, in.app)
		if in.proxy.kind == "proxy" {
			slots = append(slots, in.proxy)
		}
		if in.check != nil {
			checks = append(checks, in.check)
			stopCheck(in.check)
		}
	}
	r.mu.Unlock()
	for _, c := range checks {
		<-c.done
	}

	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Add(1)
		go func() { defer wg.Done(); close(s.stop); <-s.done }()
	}
	wg.Wait()

	r.mu.Lock()
	r.closed = true
	close(r.changed)
	r.mu.Unlock()
	defer close(r.done)
	if err := os.Remove(r.cfg.StateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing state file: %w", err)
	}
	return nil
}

// pollExit returns a channel closed when pid is gone (or quit is closed).
// It is how the exit of an adopted process, not our child, is seen.
func pollExit(pid int, every time.Duration, quit <-chan struct{}) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		t := time.NewTicker(every)
		defer t.Stop()
		for alive(pid) {
			select {
			case <-t.C:
			case <-quit:
				// Stopping: keep watching until the process is gone, which
				// terminate waits for.
				quit = nil
			}
		}
	}()
	return ch
}

// killWait bounds the wait for a process to disappear after SIGKILL.
const killWait = 5 * time.Second

// terminate stops pid's process group: SIGTERM, then SIGKILL once grace
// has passed. exited is closed when the process is gone.
func terminate(pid int, exited <-chan struct{}, grace time.Duration, log hclog.Logger) {
	signalGroup(pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
		return
	case <-t.C:
	}
	log.Warn("process ignored SIGTERM; killing it", "pid", pid, "grace", grace)
	signalGroup(pid, syscall.SIGKILL)
	k := time.NewTimer(killWait)
	defer k.Stop()
	select {
	case <-exited:
	case <-k.C:
		log.Error("process still there after SIGKILL", "pid", pid)
	}
}

// signalGroup signals the process group led by pid, or pid alone if it
// leads none.
func signalGroup(pid int, sig syscall.Signal) {
	if err := syscall.Kill(-pid, sig); errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(pid, sig)
	}
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	default:
		return err.Error()
	}
}
