package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Name is the adapter's name in snapshots, join tokens and Info.
const Name = "local"

// OptionFirstAddress is the ConfigureRequest option that sets the first
// loopback address handed to instances (default 127.0.0.2).
const OptionFirstAddress = "first_address"

// joinTokenTTL bounds how long a minted join token stays usable; the
// sidecar spends it within seconds of its start.
const joinTokenTTL = 10 * time.Minute

var defaultFirstAddress = netip.AddrFrom4([4]byte{127, 0, 0, 2})

// options is the schema of the adapter's options (Info), which the host
// checks the operator's --adapter-option local.NAME=VALUE against.
var options = []sdk.OptionSpec{
	{Name: OptionFirstAddress, Type: sdk.OptionString, Default: defaultFirstAddress.String(),
		Description: "the first loopback address handed to instances, an IPv4 address in 127.0.0.0/8"},
	{Name: OptionIsolation, Type: sdk.OptionEnum, Values: []string{isolationGuard, isolationNone}, Default: isolationGuard,
		Description: "guard: nftables rules let only an instance's sidecar reach its app (needs root and nft); none: every app and outbound port is open to any local process"},
	{Name: OptionEdge, Type: sdk.OptionString,
		Description: "services whose app port is left open on purpose (the way into the mesh), separated by commas, such as frontend,admin"},
	{Name: OptionEgress, Type: sdk.OptionEnum, Values: []string{egressAllow, egressDeny}, Default: egressAllow,
		Description: "deny: the guard lets each app connect only to its own address (its sidecar's outbound listeners), so that it reaches the outside only through declared external services; allow: apps may connect anywhere themselves"},
	{Name: OptionNode, Type: sdk.OptionString,
		Description: "the name of this adapter's node, where it places every instance (the node proxy may serve only its own node's instances); default the host name"},
	{Name: OptionWatch, Type: sdk.OptionString,
		Description: "the data directory of the local adapter that runs the workloads (DATA_DIR/adapters/local of its controller replica); with it this adapter starts, stops and probes nothing and only reports those instances (for every other replica of a raft cluster)"},
}

// Adapter is the local adapter. Create it with New; it implements
// sdk.Adapter and io.Closer.
type Adapter struct {
	// Version is what Info reports; cmd/weft sets the build's version.
	Version string

	log hclog.Logger

	// Timings; tests shorten them.
	filePoll    time.Duration // how often the workloads file is re-read
	procPoll    time.Duration // how often adopted processes are checked
	grace       time.Duration // SIGTERM to SIGKILL
	minBackoff  time.Duration
	maxBackoff  time.Duration
	stableAfter time.Duration

	mu       sync.Mutex
	cfg      *config // nil until a Configure succeeds
	run      *runner // nil until the first Watch
	guard    *guard  // nil while isolation is off
	guardErr error   // why the guard could not start or apply, if it could not
	pollStop chan struct{}
	pollDone chan struct{}
	closed   bool
}

// config is a successful Configure: the request and what was planned from
// the workloads file.
type config struct {
	req      sdk.ConfigureRequest
	file     string
	proxy    string
	first    netip.Addr
	specs    []instanceSpec
	srcHash  [32]byte
	warnings []sdk.Diagnostic
	// isolation is the option isolation ("guard" or "none"); nft is the
	// nft program when the guard can run here, else noGuard says why not.
	isolation string
	nft       string
	noGuard   string
	edge      map[string]bool // services left open (option edge)
	egress    string          // option egress: "allow" or "deny"
	node      string          // option node: this adapter's node name
	// watch is the state file of the owner (option watch), or "" when
	// this adapter runs the instances itself.
	watch string
}

// New returns a local adapter that logs with the plugin SDK's logger, which
// reaches the controller's log when the adapter runs as a plugin.
func New() *Adapter {
	return newAdapter(sdk.Logger().Named(Name))
}

func newAdapter(log hclog.Logger) *Adapter {
	return &Adapter{
		Version:     "dev",
		log:         log,
		filePoll:    500 * time.Millisecond,
		procPoll:    250 * time.Millisecond,
		grace:       time.Second, // the host allows about 2s for Close
		minBackoff:  250 * time.Millisecond,
		maxBackoff:  15 * time.Second,
		stableAfter: 10 * time.Second,
	}
}

// Info describes the adapter.
func (a *Adapter) Info(context.Context) (*sdk.InfoResponse, error) {
	return &sdk.InfoResponse{
		Name:            Name,
		Version:         a.Version,
		ProtocolVersion: sdk.ProtocolVersion,
		Capabilities:    []string{sdk.CapRunsInstances, sdk.CapJoinTokens},
		Options:         options,
	}, nil
}

// Configure reads and checks the workloads file named by req.Source and
// plans every instance: its address, its processes, its ports (which must
// be free unless an earlier run's processes are to be adopted). Nothing
// starts before Watch. Called again after Watch has started, it applies the
// new configuration to the running instances.
func (a *Adapter) Configure(_ context.Context, req *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
	if req == nil {
		return nil, errors.New("configuring the local adapter: nil request")
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, errors.New("configuring the local adapter: it is closed")
	}
	r := a.run
	a.mu.Unlock()

	var src []byte
	var diags []sdk.Diagnostic
	if req.Source != "" {
		var hd hcl.Diagnostics
		if src, hd = readWorkloads(req.Source); hd.HasErrors() {
			for _, d := range convertDiags(hd) {
				if d.Summary == "Cannot read workloads file" {
					d.Detail += " For example examples/local/workloads.hcl."
				}
				diags = append(diags, d)
			}
		}
	}
	cfg, d := a.prepare(*req, src, r)
	diags = append(diags, d...)
	resp := &sdk.ConfigureResponse{Diagnostics: diags}
	if sdk.HasErrors(diags) {
		return resp, nil
	}
	a.mu.Lock()
	old := a.cfg
	a.cfg = cfg
	a.mu.Unlock()
	if r != nil {
		if err := writeTrustBundle(cfg.req.Mesh); err != nil {
			return nil, err
		}
		a.applyGuard(cfg, old)
		r.apply(cfg.specs)
		a.applyGuard(cfg, nil)
		r.setDiags(a.diagnostics(cfg))
	}
	return resp, nil
}

// prepare checks a request and plans its instances. r is the running
// runner, or nil before the first Watch; its instances keep their
// addresses and need no port check.
func (a *Adapter) prepare(req sdk.ConfigureRequest, src []byte, r *runner) (*config, []sdk.Diagnostic) {
	var diags []sdk.Diagnostic
	m := req.Mesh
	if req.Source == "" {
		diags = append(diags, sdk.Errorf("No workloads file",
			"The local adapter's source is the path of an HCL workloads file; none was given. Pass one, for example --adapter local=examples/local/workloads.hcl."))
	}
	if m.DataDir == "" {
		diags = append(diags, sdk.Errorf("No data directory",
			"The local adapter needs MeshContext.DataDir for its state file, logs and sidecar data; the controller sets it from --data-dir."))
	}
	var proxy string
	if m.ProxyBinary == "" {
		diags = append(diags, sdk.Errorf("No proxy binary",
			"The local adapter starts a weft-proxy beside every instance, but no proxy binary was given. Build weft-proxy (make) and put it beside weft or in PATH, or pass --proxy-binary."))
	} else {
		wd, _ := os.Getwd()
		p, err := resolveCommand(m.ProxyBinary, wd)
		if err != nil {
			diags = append(diags, sdk.Errorf("Proxy binary not found", "%v. Build weft-proxy (make) or pass --proxy-binary with its path.", err))
		}
		proxy = p
	}
	if len(m.JoinKey) < 16 {
		diags = append(diags, sdk.Errorf("No join key",
			"The local adapter mints a join token for every sidecar it starts and needs MeshContext.JoinKey (at least 16 bytes) for it; the controller derives one per adapter."))
	}
	if len(m.ControllerAddrs) == 0 {
		diags = append(diags, sdk.Errorf("No controller address",
			"The sidecars the local adapter starts need MeshContext.ControllerAddrs, the host:port of the controller's sidecar API."))
	}
	if len(m.TrustBundlePEM) == 0 {
		diags = append(diags, sdk.Warningf("No trust bundle",
			"MeshContext.TrustBundlePEM is empty, so the sidecars cannot verify the controller; they will not get a certificate."))
	}
	opts, optDiags := sdk.ParseOptions(options, req.Options)
	diags = append(diags, optDiags...)
	isolation := opts.String(OptionIsolation)
	egress := opts.String(OptionEgress)
	edge := map[string]bool{}
	if v := opts.String(OptionEdge); v != "" {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if !model.ValidName(name) {
				diags = append(diags, sdk.Errorf("Invalid edge",
					"Option edge = %q: %q is not a service name; give service names separated by commas, such as frontend,admin.", v, name))
				continue
			}
			edge[name] = true
		}
	}
	node := defaultNode()
	if v := opts.String(OptionNode); opts.Given(OptionNode) {
		if !validNode(v) {
			diags = append(diags, sdk.Errorf("Invalid node",
				"Option node = %q: give 1 to 253 printable ASCII characters without spaces or '=', such as node-a.", v))
		}
		node = v
	}
	first := defaultFirstAddress
	if v := opts.String(OptionFirstAddress); opts.Given(OptionFirstAddress) {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() || !a.IsLoopback() {
			diags = append(diags, sdk.Errorf("Invalid first_address",
				"Option first_address = %q: give an IPv4 loopback address (127.0.0.0/8) such as 127.0.0.2.", v))
		} else {
			first = a
		}
	}
	var watch string
	if v := opts.String(OptionWatch); v != "" {
		switch {
		case !filepath.IsAbs(v):
			diags = append(diags, sdk.Errorf("Invalid watch",
				"Option watch = %q: give the absolute path of the local adapter's data directory on the replica that runs the workloads: its --data-dir followed by /adapters/local.", v))
		case m.DataDir != "" && filepath.Clean(v) == filepath.Clean(m.DataDir):
			diags = append(diags, sdk.Errorf("Invalid watch",
				"Option watch = %q is this adapter's own data directory; name the owner's (its controller's --data-dir followed by /adapters/local), or drop the option on the replica that runs the workloads.", v))
		default:
			watch = layout{v}.stateFile()
		}
	}
	for _, k := range opts.Unknown() {
		diags = append(diags, sdk.Warningf("Unknown option",
			"The local adapter has no option %q and ignores it; it knows %s, %s, %s, %s, %s and %s.", k, OptionFirstAddress, OptionIsolation, OptionEdge, OptionEgress, OptionNode, OptionWatch))
	}
	nft, noGuard := guardSupport()
	if watch != "" {
		// The owner guards its instances; a watcher cannot tell.
		noGuard = "this replica only watches instances another replica's local adapter runs (option watch), so it cannot see their guard"
	}
	switch {
	case watch != "":
		diags = append(diags, sdk.Warningf("Isolation not known",
			"This adapter only watches the instances the local adapter with data directory %s runs, and reports their isolation as none; the owner's status and weft check say whether its guard is on.", filepath.Dir(watch)))
	case isolation == isolationNone:
		diags = append(diags, sdk.Warningf("Isolation off",
			"The option isolation = none turns the guard off: every instance's app port and outbound ports are open to any local process, which can call an app without the mesh, forge X-Weft-Caller, or call upstreams as another service. Remove the option to turn it on."))
	case noGuard != "":
		diags = append(diags, sdk.Warningf("Isolation off",
			"No instance is isolated: %s. Every instance's app port and outbound ports are open to any local process, which can call an app without the mesh, forge X-Weft-Caller, or call upstreams as another service. Run the controller as root with nft installed to turn the guard on.", noGuard))
	}
	if b, err := os.ReadFile("/etc/group"); err == nil && noGuard == "" {
		if taken := groupsInRange(string(b)); len(taken) > 0 {
			diags = append(diags, sdk.Warningf("Guard groups taken",
				"/etc/group has groups in the range the guard gives apps and sidecars (%d to %d): %s. Their members' processes pass the guard as the instance whose gid they hold; move those groups.", gidBase, gidLast, strings.Join(taken, ", ")))
		}
	}
	if egress == egressDeny && watch == "" && (isolation != isolationGuard || noGuard != "") {
		diags = append(diags, sdk.Warningf("Egress not enforced",
			"The option egress = deny needs the guard, which is off here: apps can still connect to any address themselves. Declared external services are still reached only through the sidecars."))
	}
	if len(edge) > 0 && isolation == isolationGuard && noGuard == "" {
		names := slices.Sorted(maps.Keys(edge))
		diags = append(diags, sdk.Warningf("Edge services open",
			"The option edge leaves the app port of %s open to any local process, on purpose (their outbound ports stay guarded): their instances report isolation none.", strings.Join(names, ", ")))
	}
	if sdk.HasErrors(diags) || src == nil {
		return nil, diags
	}

	w, hd := parseWorkloads(src, req.Source)
	diags = append(diags, convertDiags(hd)...)
	if hd.HasErrors() {
		return nil, diags
	}

	// Addresses are kept from the running instances, or else from the
	// state file of an earlier run, whose processes may be adopted.
	var prev map[string]stateEntry
	var running map[string]bool
	stateFile := layout{m.DataDir}.stateFile()
	if watch != "" {
		stateFile = watch
	}
	if r != nil {
		prev, running = r.current()
	} else {
		st, err := readState(stateFile)
		if err != nil {
			return nil, append(diags, sdk.Errorf("Unreadable state file", "%v", err))
		}
		prev = st
	}
	var prevShared map[string]string
	if r != nil {
		prevShared = r.sharedAddrs()
	}
	specs, hd := buildPlan(planInput{W: w, Mesh: m, ProxyPath: proxy, First: first, Prev: prevAddresses(prev), Node: node, PrevShared: prevShared})
	diags = append(diags, convertDiags(hd)...)
	if hd.HasErrors() {
		return nil, diags
	}
	for _, s := range specs {
		if running[s.ID] || watch != "" {
			continue
		}
		// Ports held by processes of an earlier run are checked only if
		// those processes are not ours: ours are adopted, or stopped
		// before their replacements start.
		e, known := prev[s.ID]
		if !known || e.Address != s.Address || !held(e.App) {
			if _, err := checkPorts(s.Address, s.Port); err != nil {
				diags = append(diags, portDiag(s, s.Port, "the app port", err,
					fmt.Sprintf("change `port` of service %q at %s", s.Service, at(s.PortRange))))
			}
		}
		if !known || e.Address != s.Address || !held(e.Proxy) {
			for _, p := range []struct {
				port int
				what string
			}{{meshPort, "the sidecar's mesh port"}, {adminPort, "the sidecar's admin port"}} {
				if _, err := checkPorts(s.Address, p.port); err != nil {
					diags = append(diags, portDiag(s, p.port, p.what, err,
						fmt.Sprintf("set the option %s to use other addresses", OptionFirstAddress)))
				}
			}
		}
	}
	if sdk.HasErrors(diags) {
		return nil, diags
	}
	var warnings []sdk.Diagnostic
	for _, d := range diags {
		if d.Severity == sdk.SeverityWarning {
			warnings = append(warnings, d)
		}
	}
	return &config{
		req: req, file: req.Source, proxy: proxy, first: first, specs: specs,
		srcHash: sha256.Sum256(src), warnings: warnings,
		isolation: isolation, nft: nft, noGuard: noGuard, edge: edge, egress: egress, node: node,
		watch: watch,
	}, diags
}

func portDiag(s instanceSpec, port int, what string, err error, other string) sdk.Diagnostic {
	addr := net.JoinHostPort(s.Address, strconv.Itoa(port))
	return sdk.Errorf("Port in use",
		"Cannot listen on %s, %s of instance %s: %v. Stop the process that holds %s, or %s. If another controller replica's local adapter runs these workloads, this replica should only watch them: --adapter-option %s.%s=<that replica's --data-dir>/adapters/local.",
		addr, what, s.ID, unwrapOpErr(err), addr, other, Name, OptionWatch)
}

// Watch starts the instances on its first call (adopting those of an
// earlier run that still match), then sends a full snapshot now and on
// every change (a process started, exited or restarted, the workloads file
// changed) until ctx is done or the adapter is closed. Returning does not
// stop any process: only Close does.
func (a *Adapter) Watch(ctx context.Context, _ *sdk.WatchRequest, events chan<- sdk.WatchEvent) error {
	a.mu.Lock()
	watching := a.cfg != nil && a.cfg.watch != ""
	a.mu.Unlock()
	if watching {
		return a.watchOwner(ctx, events)
	}
	r, err := a.ensureRunning()
	if err != nil {
		return err
	}
	// Every change closes the runner's current channel. The next one is
	// taken before the signal, so that the fetch after it sees every
	// change made before the next signal.
	changed := sdk.NewSignal()
	ch, _ := r.changes()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			var closed bool
			ch, closed = r.changes()
			changed.Notify()
			if closed {
				return
			}
		}
	}()
	loop := sdk.Loop[localState]{
		Fetch: func(context.Context) (localState, error) {
			sts, diags, _, closed := r.view()
			if closed {
				return localState{}, sdk.Stop(nil)
			}
			for i := range sts {
				sts[i].Isolation = a.isolation(sts[i].Spec)
			}
			return localState{file: a.workloadsFile(), statuses: sts, diags: diags}, nil
		},
		Translate: translate,
	}
	changed.Notify()
	return loop.Run(ctx, changed, events)
}

func (a *Adapter) workloadsFile() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.file
}

// ensureRunning creates the runner and applies the configuration on the
// first call, and starts re-reading the workloads file.
func (a *Adapter) ensureRunning() (*runner, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, errors.New("watching: the local adapter is closed")
	}
	if a.cfg == nil {
		a.mu.Unlock()
		return nil, errors.New("watching: the local adapter is not configured; call Configure first and fix the diagnostics it reports")
	}
	if a.run != nil {
		r := a.run
		a.mu.Unlock()
		return r, nil
	}
	cfg := a.cfg
	m := cfg.req.Mesh
	l := layout{m.DataDir}
	for _, d := range []string{m.DataDir, l.logDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			a.mu.Unlock()
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	if err := writeTrustBundle(m); err != nil {
		a.mu.Unlock()
		return nil, err
	}
	prev, err := readState(l.stateFile())
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	r := newRunner(runnerConfig{
		DataDir:     m.DataDir,
		StateFile:   l.stateFile(),
		Token:       a.mintToken,
		NodeToken:   a.mintNodeToken,
		Grace:       a.grace,
		Poll:        a.procPoll,
		MinBackoff:  a.minBackoff,
		MaxBackoff:  a.maxBackoff,
		StableAfter: a.stableAfter,
		Log:         a.log,
		Cred:        processCred(cfg.noGuard == ""),
	}, prev)
	a.run = r
	a.pollStop, a.pollDone = make(chan struct{}), make(chan struct{})
	stop, done := a.pollStop, a.pollDone
	a.mu.Unlock()

	a.applyGuard(cfg, nil)
	r.apply(cfg.specs)
	r.setDiags(a.diagnostics(cfg))
	guardDone := make(chan struct{})
	go a.pollGuard(r, stop, guardDone)
	go func() { a.pollFile(r, stop, nil); <-guardDone; close(done) }()
	return r, nil
}

// mintToken mints the join token a sidecar presents once to the controller.
func (a *Adapter) mintToken(s instanceSpec) (string, error) {
	a.mu.Lock()
	mesh := a.cfg.req.Mesh
	a.mu.Unlock()
	tok, err := sdk.MintJoinToken(mesh, Name, model.Instance{ID: s.ID, Service: s.Service, Namespace: s.Namespace}, joinTokenTTL)
	if err != nil {
		return "", fmt.Errorf("minting join token for %s: %w", s.ID, err)
	}
	return tok, nil
}

// pollFile re-reads the workloads file and applies it when it changed. A
// version with errors never replaces a good one: the last good instances
// keep running and the errors travel with every snapshot until the file
// is fixed.
func (a *Adapter) pollFile(r *runner, stop <-chan struct{}, done chan<- struct{}) {
	if done != nil {
		defer close(done)
	}
	t := time.NewTicker(a.filePoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		a.reload(r)
	}
}

func (a *Adapter) reload(r *runner) {
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	src, hd := readWorkloads(cfg.file)
	if hd.HasErrors() {
		r.setDiags(append(append(slices.Clone(cfg.warnings), convertDiags(hd)...), sdk.Errorf("Workloads file not applied",
			"%s cannot be read (see above); the instances of its last good version keep running; restore the file.", cfg.file)))
		return
	}
	if sha256.Sum256(src) == cfg.srcHash {
		r.setDiags(a.diagnostics(cfg))
		return
	}
	next, diags := a.prepare(cfg.req, src, r)
	if next == nil {
		r.setDiags(append(diags, sdk.Errorf("Workloads file not applied",
			"%s changed but has errors (reported with this one); the instances of its last good version keep running until it is fixed.", cfg.file)))
		return
	}
	a.log.Info("workloads file changed; applying it", "file", cfg.file, "instances", len(next.specs))
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.cfg = next
	a.mu.Unlock()
	a.applyGuard(next, cfg)
	r.apply(next.specs)
	a.applyGuard(next, nil)
	r.setDiags(a.diagnostics(next))
}

// Close stops every process the adapter started or adopted (SIGTERM to
// each process group, SIGKILL after a grace period of a second) and
// removes the state file. The plugin SDK calls it when the controller
// shuts the adapter down; when the controller dies instead, Close is not
// called and the instances keep running for the next adapter to adopt.
// Close is idempotent.
func (a *Adapter) Close() error {
	a.mu.Lock()
	a.closed = true
	r, stop, done := a.run, a.pollStop, a.pollDone
	a.pollStop = nil
	a.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	if r == nil {
		return nil
	}
	err := r.close()
	// The rules go after the processes: an app is never open while it runs.
	a.mu.Lock()
	g := a.guard
	a.guard = nil
	a.mu.Unlock()
	if g != nil {
		err = errors.Join(err, g.close())
	}
	if err != nil {
		return fmt.Errorf("closing the local adapter: %w", err)
	}
	return nil
}

// writeTrustBundle writes the roots the sidecars verify the controller with.
func writeTrustBundle(m sdk.MeshContext) error {
	path := layout{m.DataDir}.trustBundle()
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, m.TrustBundlePEM) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, m.TrustBundlePEM, 0o644); err != nil {
		return fmt.Errorf("writing trust bundle: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing trust bundle: %w", err)
	}
	return nil
}

// convertDiags turns HCL diagnostics into plugin diagnostics, which carry
// no source range: the detail starts with file:line:col.
func convertDiags(hd hcl.Diagnostics) []sdk.Diagnostic {
	out := make([]sdk.Diagnostic, 0, len(hd))
	for _, d := range hd {
		sev := sdk.SeverityError
		if d.Severity == hcl.DiagWarning {
			sev = sdk.SeverityWarning
		}
		detail := d.Detail
		if d.Subject != nil {
			detail = at(*d.Subject) + ": " + detail
		}
		out = append(out, sdk.Diagnostic{Severity: sev, Summary: d.Summary, Detail: detail})
	}
	return out
}

// unwrapOpErr drops the "listen tcp 127.0.0.2:8080:" prefix that the
// message repeats anyway.
func unwrapOpErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// Interface guards.
var (
	_ sdk.Adapter = (*Adapter)(nil)
	_ io.Closer   = (*Adapter)(nil)
)
