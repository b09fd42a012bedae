package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
	policyhcl "github.com/weftmesh/weft/hcl"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/host"
)

type controllerFlags struct {
	policyDir   string
	adapters    []string
	options     []string
	pluginDir   string
	listen      string
	admin       string
	dataDir     string
	proxyBinary string
	pollEvery   time.Duration
	serverNames []string
}

func newControllerCmd() *cobra.Command {
	var f controllerFlags
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Weft controller",
		Long: `Run the Weft controller: launch the adapters, watch the policy directory,
compile one configuration per instance, and serve certificates and
configuration to sidecars.

Each --adapter is NAME=SOURCE. Built-in adapters (local) run as plugin
processes of this binary; any other NAME is a third-party adapter, the
binary weft-adapter-NAME in --plugin-dir.`,
		Example: `  weft controller --policy-dir examples/local/policy --adapter local=examples/local/workloads.hcl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runController(ctx, f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policyDir, "policy-dir", "", "directory of HCL policy files, watched for changes (required)")
	fl.StringArrayVar(&f.adapters, "adapter", nil, "an adapter to run, NAME=SOURCE (repeatable), e.g. local=examples/local/workloads.hcl")
	fl.StringArrayVar(&f.options, "adapter-option", nil, "an option for an adapter, NAME.KEY=VALUE (repeatable), e.g. local.first_address=127.0.10.2")
	fl.StringVar(&f.pluginDir, "plugin-dir", "plugins.d", "directory holding third-party adapters (weft-adapter-NAME)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7400", "address of the sidecar API (gRPC over TLS)")
	fl.StringVar(&f.admin, "admin", "127.0.0.1:7401", "address of the admin HTTP API (needs the token in DATA_DIR/admin.token)")
	fl.StringVar(&f.dataDir, "data-dir", ".weft", "directory for the CA, the admin token and adapters' state")
	fl.StringVar(&f.proxyBinary, "proxy-binary", "", "path of weft-proxy, for adapters that start sidecars (default: beside this binary, then $PATH)")
	fl.DurationVar(&f.pollEvery, "policy-poll", time.Second, "how often to look for policy changes")
	fl.StringSliceVar(&f.serverNames, "server-name", nil, "extra DNS names or IPs for the controller's certificate, as sidecars dial it (e.g. weft-controller.weft-system.svc)")
	_ = cmd.MarkFlagRequired("policy-dir")
	return cmd
}

type adapterSpec struct {
	name, source string
	options      map[string]string
}

func parseAdapters(specs, options []string) ([]adapterSpec, error) {
	var out []adapterSpec
	seen := map[string]bool{}
	for _, s := range specs {
		name, source, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--adapter %q: want NAME=SOURCE, for example local=examples/local/workloads.hcl", s)
		}
		if seen[name] {
			return nil, fmt.Errorf("--adapter %q: adapter %s is given twice; run one adapter per name", s, name)
		}
		seen[name] = true
		out = append(out, adapterSpec{name: name, source: source, options: map[string]string{}})
	}
	for _, o := range options {
		kv, value, ok := strings.Cut(o, "=")
		name, key, ok2 := strings.Cut(kv, ".")
		if !ok || !ok2 || name == "" || key == "" {
			return nil, fmt.Errorf("--adapter-option %q: want NAME.KEY=VALUE, for example local.first_address=127.0.10.2", o)
		}
		found := false
		for _, a := range out {
			if a.name == name {
				a.options[key] = value
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("--adapter-option %q: there is no --adapter %s=...; add one or fix the name", o, name)
		}
	}
	return out, nil
}

func runController(ctx context.Context, f controllerFlags, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	specs, err := parseAdapters(f.adapters, f.options)
	if err != nil {
		return err
	}
	// The policy must be good before anything starts.
	pol, sources, err := loadPolicy(f.policyDir, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	authority, err := ca.LoadOrCreate(filepath.Join(f.dataDir, "ca"))
	if err != nil {
		return err
	}
	token, err := adminToken(f.dataDir)
	if err != nil {
		return err
	}
	proxyBin, err := findProxy(f.proxyBinary)
	if err != nil {
		return err
	}

	reg := registry.New()
	ctl := controller.New(controller.Options{Registry: reg, Logger: log})
	handles := map[string]*host.Handle{}
	for _, a := range specs {
		handles[a.name] = &host.Handle{}
	}
	srv := meshserver.New(meshserver.Options{
		CA: authority, Join: ca.NewJoinVerifier(authority.JoinSecret()), Registry: reg,
		TrustDomain: ctl.TrustDomain, Logger: log,
		VerifyCredential: verifyWith(handles),
		Binder:           ctl,
	})
	ctl.SetServer(srv)

	listenHost, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return fmt.Errorf("parsing --listen %q: %w", f.listen, err)
	}
	// Issued again at half-life and after a root rotation.
	serving, err := srv.ServingTLSConfig(spiffe.Identity{TrustDomain: pol.Mesh.TrustDomain, Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService},
		uniq(append([]string{listenHost, "127.0.0.1", "::1", "localhost"}, f.serverNames...)))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening for sidecars on %s: %w (is another controller running? pick another address with --listen)", f.listen, err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(serving)))
	srv.Register(g)
	adminLis, err := net.Listen("tcp", f.admin)
	if err != nil {
		lis.Close()
		return fmt.Errorf("listening for the admin API on %s: %w (pick another address with --admin)", f.admin, err)
	}

	snapshots := make(chan model.Snapshot, 16)
	policies := make(chan *policy.Policy, 1)
	policies <- pol
	st := &controllerStatus{adapters: map[string]host.Status{}, sources: sources}

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run := func(fn func()) { wg.Add(1); go func() { defer wg.Done(); fn() }() }

	run(func() { _ = g.Serve(lis) })
	adminSrv := &http.Server{Handler: adminHandler(token, ctl, reg, srv, st, authority), ReadHeaderTimeout: 10 * time.Second}
	run(func() { _ = adminSrv.Serve(adminLis) })
	run(func() { _ = ctl.Run(ctx, snapshots, policies) })
	run(func() { srv.RetireRoots(ctx) })
	run(func() { watchPolicy(ctx, f.policyDir, f.pollEvery, policies, st, log, stderr) })

	for _, a := range specs {
		opts, err := adapterOptions(a, f, pol.Mesh.TrustDomain, authority, proxyBin, log)
		opts.Handle = handles[a.name]
		if err != nil {
			cancel()
			g.Stop()
			adminSrv.Close()
			wg.Wait()
			return err
		}
		updates := make(chan host.Update, 4)
		run(func() {
			err := host.Supervise(ctx, opts, updates, st.setAdapter)
			if err != nil && ctx.Err() == nil {
				log.Error("adapter stopped", "adapter", a.name, "err", err)
			}
		})
		run(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case u := <-updates:
					for _, d := range u.Diagnostics {
						log.Warn("adapter reported a problem", "adapter", u.Adapter, "summary", d.Summary, "detail", d.Detail)
					}
					select {
					case snapshots <- u.Snapshot:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	}
	log.Info("controller ready", "sidecar_api", lis.Addr().String(), "admin_api", adminLis.Addr().String(),
		"trust_domain", pol.Mesh.TrustDomain, "adapters", len(specs), "data_dir", f.dataDir)

	<-ctx.Done()
	log.Info("shutting down: stopping adapters (the local adapter stops the processes it started)")
	cancel()
	// Adapters shut down inside Supervise; the gRPC server stops after.
	g.Stop()
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = adminSrv.Shutdown(shutdownCtx)
	wg.Wait()
	return nil
}

// verifyWith checks a sidecar's scheduler credential with the adapter it
// names, over the plugin protocol.
func verifyWith(handles map[string]*host.Handle) func(context.Context, string, string, string) (meshserver.CredentialClaims, error) {
	return func(ctx context.Context, adapter, instance, credential string) (meshserver.CredentialClaims, error) {
		h, ok := handles[adapter]
		if !ok {
			return meshserver.CredentialClaims{}, fmt.Errorf("this controller runs no adapter %q", adapter)
		}
		r, err := h.VerifyIdentity(ctx, &plugins.VerifyIdentityRequest{InstanceID: instance, Credential: credential})
		if errors.Is(err, host.ErrNotRunning) {
			return meshserver.CredentialClaims{}, fmt.Errorf("%w: %w", meshserver.ErrRetry, err)
		}
		if err != nil {
			return meshserver.CredentialClaims{}, err
		}
		return meshserver.CredentialClaims{Instance: r.InstanceID, Service: r.Service, Namespace: r.Namespace}, nil
	}
}

func adapterOptions(a adapterSpec, f controllerFlags, trustDomain string, authority *ca.CA, proxyBin string, log *slog.Logger) (host.Options, error) {
	var command func() *exec.Cmd
	if _, ok := builtinAdapters[a.name]; ok {
		self, err := os.Executable()
		if err != nil {
			return host.Options{}, fmt.Errorf("finding this executable to launch adapter %s: %w", a.name, err)
		}
		command = func() *exec.Cmd { return ownGroup(exec.Command(self, "adapter", a.name)) }
	} else {
		path, err := host.Find(f.pluginDir, a.name)
		if err != nil {
			return host.Options{}, err
		}
		command = func() *exec.Cmd { return ownGroup(exec.Command(path)) }
	}
	source := a.source
	if source != "" && !filepath.IsAbs(source) {
		if _, err := os.Stat(source); err == nil {
			source, _ = filepath.Abs(source)
		}
	}
	dataDir, err := filepath.Abs(filepath.Join(f.dataDir, "adapters", a.name))
	if err != nil {
		return host.Options{}, fmt.Errorf("resolving the data directory: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return host.Options{}, fmt.Errorf("creating adapter data directory: %w", err)
	}
	return host.Options{
		Name:    a.name,
		Command: command,
		Request: plugins.ConfigureRequest{
			Source:  source,
			Options: a.options,
			Mesh: plugins.MeshContext{
				TrustDomain:     trustDomain,
				ControllerAddrs: []string{f.listen},
				TrustBundlePEM:  authority.RootsPEM(),
				JoinKey:         ca.DeriveJoinKey(authority.JoinSecret(), a.name),
				ProxyBinary:     proxyBin,
				DataDir:         dataDir,
			},
		},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "adapter." + a.name, Level: hclog.Info, Output: os.Stderr}),
	}, nil
}

// ownGroup puts an adapter plugin in a process group of its own, so that a
// Ctrl-C at the terminal reaches only the controller, which then shuts the
// plugin down gracefully (and the local adapter stops what it started),
// instead of killing the plugin in the middle of that.
func ownGroup(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func findProxy(flag string) (string, error) {
	if flag != "" {
		p, err := filepath.Abs(flag)
		if err != nil {
			return "", fmt.Errorf("resolving --proxy-binary: %w", err)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("--proxy-binary %s: %w", flag, err)
		}
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "weft-proxy")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("weft-proxy"); err == nil {
		return filepath.Abs(p)
	}
	// Only adapters that start sidecars need it; they say so if it is missing.
	return "", nil
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// loadPolicy loads a policy directory, printing every diagnostic. It also
// returns the source of every file, by base name, for GET /v1/policy.
func loadPolicy(dir string, stderr io.Writer) (*policy.Policy, map[string]string, error) {
	pol, diags, files := policyhcl.Load(dir)
	if len(diags) > 0 {
		_ = policyhcl.WriteDiagnostics(stderr, diags, files, false)
	}
	if diags.HasErrors() || pol == nil {
		return nil, nil, fmt.Errorf("policy in %s has errors (see above); fix them, `weft policy validate %s` checks without starting anything", dir, dir)
	}
	sources := make(map[string]string, len(files))
	for name, f := range files {
		sources[filepath.Base(name)] = string(f.Bytes)
	}
	return pol, sources, nil
}

// watchPolicy polls the policy directory and sends each new good policy. A
// policy with errors is reported and the last good one stays in force.
func watchPolicy(ctx context.Context, dir string, every time.Duration, out chan<- *policy.Policy, st *controllerStatus, log *slog.Logger, stderr io.Writer) {
	last := hashDir(dir)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h := hashDir(dir)
		if h == last {
			continue
		}
		last = h
		pol, sources, err := loadPolicy(dir, stderr)
		if err != nil {
			st.setPolicyError(err.Error())
			log.Error("policy change rejected; the last good policy stays in force", "dir", dir)
			continue
		}
		st.setPolicy(sources)
		log.Info("policy reloaded", "dir", dir, "summary", policyhcl.Summary(pol))
		select {
		case out <- pol:
		case <-ctx.Done():
			return
		}
	}
}

func hashDir(dir string) string {
	h := sha256.New()
	names, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func adminToken(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "admin.token")
	b, err := os.ReadFile(p)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading admin token: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generating admin token: %w", err)
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	return tok, nil
}

type controllerStatus struct {
	mu          sync.Mutex
	adapters    map[string]host.Status
	policyError string
	sources     map[string]string // of the policy in force
}

// setPolicy records the sources of a newly accepted policy.
func (s *controllerStatus) setPolicy(sources map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policyError, s.sources = "", sources
}

func (s *controllerStatus) setAdapter(a host.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adapters[a.Adapter] = a
}

func (s *controllerStatus) setPolicyError(e string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policyError = e
}

// StatusReport is what GET /v1/status returns.
type StatusReport struct {
	TrustDomain     string                    `json:"trust_domain"`
	Policy          string                    `json:"policy"`
	PolicyError     string                    `json:"policy_error,omitempty"`
	Adapters        []AdapterReport           `json:"adapters"`
	Instances       []InstanceReport          `json:"instances"`
	Sidecars        []meshserver.StreamStatus `json:"sidecars"`
	ConfigBuilds    int                       `json:"config_builds"`
	IntentionsCount int                       `json:"intentions"`
	// Roots are the CA's roots: the active one first, then the previous
	// ones still trusted after a rotation.
	Roots []RootReport `json:"roots"`
	// IdentityBinding is the policy's mesh identity_binding: "strict" or
	// "permissive".
	IdentityBinding string `json:"identity_binding,omitempty"`
	// Skipped are the instances left out of every endpoint set (reason
	// "unbound workload": no binding of their service names their
	// workload; they get no certificate). In permissive mode they are
	// served anyway and listed here as a warning.
	Skipped []compile.Skipped `json:"skipped,omitempty"`
}

// RootReport is one CA root and how many connected sidecars hold a leaf
// it signed (as far as this controller issued them).
type RootReport struct {
	ca.RootInfo
	Sidecars int `json:"sidecars"`
}

// RootsReport is what GET /v1/ca/roots returns.
type RootsReport struct {
	Roots []RootReport `json:"roots"`
	// SidecarsUnknown counts connected sidecars whose leaf this controller
	// did not issue (another replica or an earlier run did).
	SidecarsUnknown int `json:"sidecars_unknown"`
	// BundlePEM is every root, as sidecars should trust them.
	BundlePEM string `json:"bundle_pem"`
}

func rootsReport(authority *ca.CA, sidecars []meshserver.StreamStatus) RootsReport {
	rep := RootsReport{BundlePEM: string(authority.RootsPEM())}
	count := map[string]int{}
	for _, s := range sidecars {
		if s.LeafRoot == "" {
			rep.SidecarsUnknown++
		} else {
			count[s.LeafRoot]++
		}
	}
	for _, r := range authority.Roots() {
		rep.Roots = append(rep.Roots, RootReport{RootInfo: r, Sidecars: count[r.ID]})
	}
	return rep
}

// AdapterReport describes one supervised adapter plugin.
type AdapterReport struct {
	Name      string `json:"name"`
	Pid       int    `json:"pid"`
	Running   bool   `json:"running"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
}

// InstanceReport describes one instance in the registry.
type InstanceReport struct {
	Adapter  string         `json:"adapter"`
	ID       string         `json:"id"`
	Service  string         `json:"service"`
	Address  string         `json:"address"`
	Ports    map[string]int `json:"ports"`
	Health   string         `json:"health"`
	Identity string         `json:"identity"`
}

// JoinTokenRequest is the body of POST /v1/join-tokens: a launcher that is
// not an adapter (a Mesos framework, a script) asks for a single-use join
// token for one instance that an adapter reports.
type JoinTokenRequest struct {
	Adapter    string `json:"adapter"`
	Instance   string `json:"instance"`
	Service    string `json:"service"`
	Namespace  string `json:"namespace"`
	TTLSeconds int    `json:"ttl_seconds"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func adminHandler(token string, ctl *controller.Controller, reg *registry.Registry, srv *meshserver.Server, st *controllerStatus, authority *ca.CA) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/join-tokens", func(w http.ResponseWriter, r *http.Request) {
		var req JoinTokenRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, "decoding the request: "+err.Error()+`; send {"adapter", "instance", "service", "namespace", "ttl_seconds"}`, http.StatusBadRequest)
			return
		}
		if req.Adapter == "" || req.Instance == "" || !model.ValidName(req.Service) || (req.Namespace != "" && !model.ValidName(req.Namespace)) {
			http.Error(w, "adapter, instance and service are required; service and namespace must be DNS labels", http.StatusBadRequest)
			return
		}
		ttl := time.Duration(req.TTLSeconds) * time.Second
		if ttl <= 0 || ttl > time.Hour {
			ttl = 10 * time.Minute
		}
		tok, err := ca.MintJoinToken(ca.DeriveJoinKey(authority.JoinSecret(), req.Adapter), ca.JoinClaims{
			Adapter: req.Adapter, Instance: req.Instance, Service: req.Service, Namespace: req.Namespace,
		}, ttl)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": tok, "expires_in": ttl.String()})
	})
	mux.HandleFunc("GET /v1/ca/roots", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, rootsReport(authority, srv.Status()))
	})
	mux.HandleFunc("POST /v1/ca/rotate", func(w http.ResponseWriter, r *http.Request) {
		rot, err := srv.RotateRoot()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, rot)
	})
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		st.mu.Lock()
		out := PolicySources{Files: st.sources}
		st.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		rep := StatusReport{TrustDomain: ctl.TrustDomain(), Sidecars: srv.Status(), ConfigBuilds: ctl.Builds()}
		rep.Roots = rootsReport(authority, rep.Sidecars).Roots
		if p := ctl.Policy(); p != nil {
			rep.Policy = policyhcl.Summary(p)
			rep.IntentionsCount = len(p.Intentions)
			rep.IdentityBinding = string(policy.BindingStrict)
		}
		var permissive bool
		rep.Skipped, permissive = ctl.Unbound()
		if permissive {
			rep.IdentityBinding = string(policy.BindingPermissive)
		}
		st.mu.Lock()
		rep.PolicyError = st.policyError
		for _, a := range st.adapters {
			rep.Adapters = append(rep.Adapters, AdapterReport{Name: a.Adapter, Pid: a.Pid, Running: a.Running, Restarts: a.Restarts, LastError: a.LastError})
		}
		st.mu.Unlock()
		sort.Slice(rep.Adapters, func(i, j int) bool { return rep.Adapters[i].Name < rep.Adapters[j].Name })
		for _, e := range reg.Entries() {
			rep.Instances = append(rep.Instances, InstanceReport{
				Adapter: e.Adapter, ID: e.Instance.ID, Service: e.Instance.Service, Address: e.Instance.Address,
				Ports: e.Instance.Ports, Health: string(e.Instance.Health),
				Identity: spiffe.ID(rep.TrustDomain, e.Instance.NS(), e.Instance.Service),
			})
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "the admin API needs the header 'Authorization: Bearer <token>'; the token is in DATA_DIR/admin.token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
