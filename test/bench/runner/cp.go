package runner

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/compile"
	wcontroller "github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/proxy/control"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
	"github.com/weftmesh/weft/core/telemetry"
)

// CPShape is the control-plane benchmark's mesh: Services services of
// PerService instances each (the endpoints), Sidecars of which (the
// first instance of the first Sidecars services) have a sidecar, each
// with Upstreams upstream services (the next ones, in a ring).
type CPShape struct {
	Services   int `json:"services"`
	PerService int `json:"per_service"`
	Sidecars   int `json:"sidecars"`
	Upstreams  int `json:"upstreams_per_sidecar"`
}

func (s CPShape) svc(i int) string { return "svc-" + strconv.Itoa(i%s.Services) }

func (s CPShape) sidecar(i int) string { return s.svc(i) + "-0" }

// affected returns the sidecars whose config holds service x's endpoints.
func (s CPShape) affected(x int) []string {
	var out []string
	for d := 1; d <= s.Upstreams; d++ {
		j := ((x-d)%s.Services + s.Services) % s.Services
		if j < s.Sidecars {
			out = append(out, s.sidecar(j))
		}
	}
	return out
}

// cpState is the controller side: registry, policy, compile, meshserver,
// joined as core/controller's rebuild joins them: the adapter's full
// snapshot into the registry, a compile.Compiler compiling again what it
// touches, its delta to meshserver.Apply (the first build: every
// configuration to Update).
type cpState struct {
	shape CPShape
	stats *telemetry.Collector // the sidecars' reports (cpreport.go)
	reg   *registry.Registry
	srv   *meshserver.Server
	comp  *compile.Compiler
	fed   bool
	pol   *policy.Policy
	ins   []model.Instance
	mu    sync.Mutex
}

func newCPState(shape CPShape, c *ca.CA) *cpState {
	st := &cpState{shape: shape, reg: registry.New(), comp: compile.NewCompiler(), stats: telemetry.New(telemetry.Options{})}
	st.srv = meshserver.New(meshserver.Options{CA: c, Join: ca.NewJoinVerifier(c.JoinSecret()), Workloads: wcontroller.Static(st.reg, TrustDomain), Stats: st.stats,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	st.pol = &policy.Policy{Mesh: policy.Mesh{TrustDomain: TrustDomain, DefaultAction: policy.Deny}, Services: map[string]policy.Service{}}
	for i := range shape.Services {
		var ups []policy.Upstream
		for d := 1; d <= shape.Upstreams; d++ {
			ups = append(ups, policy.Upstream{Service: shape.svc(i + d), LocalPort: 30000 + d})
		}
		st.pol.Services[shape.svc(i)] = policy.Service{Name: shape.svc(i), Protocol: policy.HTTP, Upstreams: ups,
			Bindings: []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": shape.svc(i)}}}}
		for k := range shape.PerService {
			n := i*shape.PerService + k
			st.ins = append(st.ins, model.Instance{ID: fmt.Sprintf("%s-%d", shape.svc(i), k), Service: shape.svc(i),
				Workload: map[string]string{model.WorkloadScheduler: "local", "name": shape.svc(i)},
				Address:  fmt.Sprintf("127.%d.%d.%d", 1+n/62500, n/250%250, 1+n%250), Health: model.HealthPassing,
				Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 20000}})
		}
	}
	st.pol.Intentions = []policy.Intention{{Source: policy.Wildcard, Destination: policy.Wildcard, Action: policy.Allow}}
	return st
}

// recompile pushes the adapter's snapshot through the registry and the
// compiler into the meshserver and returns how long compile (registry
// included) and publish (encoding and hashing the changed
// configurations, waking their streams) took.
func (st *cpState) recompile() (compileTime, publishTime time.Duration) {
	t := time.Now()
	st.reg.Update(model.Snapshot{Adapter: "bench", Instances: st.ins})
	d := st.comp.Update(st.pol, st.reg.Entries())
	compileTime = time.Since(t)
	t = time.Now()
	if !st.fed {
		st.srv.Update(st.comp.Configs())
		st.fed = true
	} else {
		st.srv.Apply(d.Changed, d.Removed)
	}
	return compileTime, time.Since(t)
}

// change moves one endpoint (its mesh port) and recompiles.
func (st *cpState) change(k int) (version uint64, compileTime, publishTime time.Duration, affected []string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	x := k % st.shape.Services
	in := &st.ins[x*st.shape.PerService+(k/st.shape.Services)%st.shape.PerService]
	ports := map[string]int{model.PortApp: 8080, model.PortMesh: in.Ports[model.PortMesh] + 1}
	if ports[model.PortMesh] > 21000 {
		ports[model.PortMesh] = 20000
	}
	in.Ports = ports
	compileTime, publishTime = st.recompile()
	affected = st.shape.affected(x)
	if len(affected) > 0 {
		_, version, _ = st.srv.Config(affected[0])
	}
	return version, compileTime, publishTime, affected
}

// ServeCPController is the controller process of the control-plane
// benchmark (weft-bench cp-controller): core/meshserver fed through
// core/registry and core/compile, on listen, with a loopback HTTP control
// endpoint (POST /change?k=N) on control. It prints "ready" once serving.
func ServeCPController(ctx context.Context, caDir, listen, control string, shape CPShape) error {
	c, err := ca.LoadOrCreate(caDir)
	if err != nil {
		return err
	}
	st := newCPState(shape, c)
	ct, pt := st.recompile()
	fmt.Fprintf(os.Stderr, "compiled %d configs in %v (published in %v)\n", len(st.ins), ct, pt)
	cert, err := c.ServerCertificate(spiffe.Identity{TrustDomain: TrustDomain, Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService}, []string{"127.0.0.1"})
	if err != nil {
		return err
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(st.srv.TLSConfig(cert))))
	st.srv.Register(g)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	defer g.Stop()
	go g.Serve(ln)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /change", func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("k"))
		v, ct, pt, aff := st.change(k)
		json.NewEncoder(w).Encode(changeReply{Version: v, CompileMicros: ct.Microseconds(), PublishMicros: pt.Microseconds(), Affected: aff})
	})
	serveCPStats(mux, st.stats)
	hs := &http.Server{Handler: mux}
	cl, err := net.Listen("tcp", control)
	if err != nil {
		return err
	}
	go hs.Serve(cl)
	defer hs.Close()
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

type changeReply struct {
	Version       uint64   `json:"version"`
	CompileMicros int64    `json:"compile_us"`
	PublishMicros int64    `json:"publish_us"`
	Affected      []string `json:"affected"`
}

// simSidecar is one simulated sidecar: the meshapi stream of the real
// sidecar (mTLS with a certificate of its service, subscribe, receive and
// decode every ConfigUpdate, acknowledge it) without listeners.
type simSidecar struct {
	instance string
	tls      *tls.Config
	mu       sync.Mutex
	acks     []ackAt
	streams  int // successful subscriptions
	// cur is the replica of the stream open now ("" between streams) and
	// curSince its first ACK; probe, when set, looks for one endpoint in
	// every configuration ACKed (cpreplicas.go).
	cur      string
	curSince time.Time
	probe    *endpointProbe
}

type ackAt struct {
	version uint64
	at      time.Time
	bytes   int
}

// ackedSince returns when the sidecar first acknowledged a version >= v
// after t, if it did.
func (s *simSidecar) ackedSince(v uint64, t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.acks {
		if a.version >= v && !a.at.Before(t) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// run keeps a stream open to one of the controller replicas addrs until
// ctx ends, choosing the replica and the wait before each attempt as the
// real sidecar does (core/proxy/control.Replicas: its own random order,
// the next replica after a spread wait drawn from [0, 1s), 200ms doubling
// to 10s with jitter once every replica failed).
func (s *simSidecar) run(ctx context.Context, addrs ...string) {
	r, err := control.NewReplicas(addrs, control.ReplicaOptions{})
	if err != nil {
		panic(err) // addresses of our own making
	}
	for ctx.Err() == nil {
		t := r.Current(ctx)
		if s.streamOnce(ctx, t.Addr) {
			r.Succeeded(t)
		}
		d := r.Failed(t)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

func (s *simSidecar) streamOnce(ctx context.Context, addr string) bool {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(s.tls)), grpc.WithNoProxy())
	if err != nil {
		return false
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := meshapi.NewMeshClient(cc).StreamConfig(sctx)
	if err != nil {
		return false
	}
	var applied uint64
	if err := st.Send(&meshapi.ConfigRequest{InstanceId: s.instance, AppliedVersion: applied}); err != nil {
		return false
	}
	got := false
	defer func() {
		s.mu.Lock()
		s.cur = ""
		s.mu.Unlock()
	}()
	for {
		u, err := st.Recv()
		if err != nil {
			return got
		}
		got = true
		if u.GetConfig().GetInstanceId() != s.instance {
			st.Send(&meshapi.ConfigRequest{InstanceId: s.instance, RejectedVersion: u.Version, ErrorDetail: "config for another instance"})
			continue
		}
		n := 0
		for _, up := range u.GetConfig().GetUpstreams() {
			n += len(up.GetEndpoints())
		}
		if err := st.Send(&meshapi.ConfigRequest{InstanceId: s.instance, AppliedVersion: u.Version}); err != nil {
			return got
		}
		now := time.Now()
		s.mu.Lock()
		s.acks = append(s.acks, ackAt{version: u.Version, at: now, bytes: n})
		if s.cur == "" {
			s.cur, s.curSince = addr, now
		}
		p := s.probe
		s.mu.Unlock()
		if p != nil {
			p.check(s.instance, u, now)
		}
	}
}

// CPReport is what the control-plane benchmark measured.
type CPReport struct {
	Shape               CPShape `json:"shape"`
	Quiet               bool    `json:"quiet"`
	Before              Load    `json:"machine_before"`
	InitialCompileMs    float64 `json:"initial_compile_ms"`
	EndpointsPerSidecar int     `json:"endpoints_per_sidecar"`
	// AllAckedSeconds: from starting all sidecars at once until every
	// one has acknowledged its full configuration.
	AllAckedSeconds float64 `json:"all_acked_seconds"`
	// Change: from one endpoint change (POST to the controller) to the
	// last affected sidecar's acknowledgement.
	Changes      int     `json:"changes"`
	ChangeP50Ms  float64 `json:"change_p50_ms"`
	ChangeP99Ms  float64 `json:"change_p99_ms"`
	ChangeMaxMs  float64 `json:"change_max_ms"`
	CompileP50Ms float64 `json:"compile_p50_ms"`
	// PublishP50Ms: meshserver.Apply (encode and hash the changed
	// configurations once, wake their streams).
	PublishP50Ms float64 `json:"publish_p50_ms"`
	// CPUPerChangeMs: the controller process's CPU time (user + system,
	// /proc/<pid>/stat) over the endpoint changes, divided by their
	// number: compile, publish, encode, send and reading the ACKs.
	CPUPerChangeMs  float64 `json:"controller_cpu_ms_per_change"`
	ControllerRSSMB float64 `json:"controller_rss_mib_idle"`
	// RSSPerSidecarKiB: controller RSS growth per connected sidecar.
	RSSPerSidecarKiB float64 `json:"controller_rss_kib_per_sidecar"`
	// Storm: controller killed and restarted; from starting the new
	// process (its start-up and first compile included) to every
	// sidecar's acknowledgement of the new controller's config.
	StormSeconds float64 `json:"reconnect_storm_seconds"`
	// Failover: two controllers (the same CA), every sidecar given both
	// and connected to the first, which is killed (SIGKILL); from the
	// kill to each sidecar's first ACK from the other (p50 and the
	// last).
	FailoverP50Seconds float64 `json:"failover_p50_seconds,omitempty"`
	FailoverSeconds    float64 `json:"failover_all_seconds,omitempty"`
	// Reporting: every sidecar sending golden-signal reports (issue 14).
	Reporting *CPReporting `json:"reporting,omitempty"`
	Note      string       `json:"note"`
}

// Markdown renders the control-plane figures.
func (c *CPReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Control plane: %d services x %d instances = %d endpoints; %d simulated sidecars connected at once, %d upstream services each (%d endpoints per config)%s.\n\n",
		c.Shape.Services, c.Shape.PerService, c.Shape.Services*c.Shape.PerService, c.Shape.Sidecars, c.Shape.Upstreams, c.EndpointsPerSidecar,
		map[bool]string{true: "", false: "; **machine busy: not reportable**"}[c.Quiet])
	b.WriteString("| Figure | Value |\n|---|---|\n")
	fmt.Fprintf(&b, "| compile of all %d instance configs (first) | %.0f ms |\n", c.Shape.Services*c.Shape.PerService, c.InitialCompileMs)
	fmt.Fprintf(&b, "| all sidecars connected and ACKed | %.2f s |\n", c.AllAckedSeconds)
	fmt.Fprintf(&b, "| endpoint change to last ACK, p50 / p99 / max (%d changes) | %.1f / %.1f / %.1f ms |\n", c.Changes, c.ChangeP50Ms, c.ChangeP99Ms, c.ChangeMaxMs)
	fmt.Fprintf(&b, "| of which compile (registry and compile.Compiler), p50 | %.1f ms |\n", c.CompileP50Ms)
	fmt.Fprintf(&b, "| of which publish (meshserver.Apply: encode, hash), p50 | %.1f ms |\n", c.PublishP50Ms)
	fmt.Fprintf(&b, "| controller CPU per endpoint change | %.1f ms |\n", c.CPUPerChangeMs)
	fmt.Fprintf(&b, "| controller RSS before sidecars connect | %.1f MiB |\n", c.ControllerRSSMB)
	fmt.Fprintf(&b, "| controller RSS per connected sidecar | %.1f KiB |\n", c.RSSPerSidecarKiB)
	fmt.Fprintf(&b, "| reconnect storm: controller restart to all ACKed | %.2f s |\n", c.StormSeconds)
	if c.FailoverSeconds > 0 {
		fmt.Fprintf(&b, "| failover: SIGKILL of the sidecars' controller to ACKs from the other replica, p50 / all | %.2f / %.2f s |\n", c.FailoverP50Seconds, c.FailoverSeconds)
	}
	if r := c.Reporting; r != nil {
		fmt.Fprintf(&b, "| reports: controller CPU per report (%d cells; %d reports, every %s) | %.0f µs |\n", r.CellsPerReport, r.ReportsReceived, r.Interval, r.CPUPerReportUs)
		fmt.Fprintf(&b, "| reports: 1,000 sidecars every 10 s, share of one core | %.2f %% |\n", r.CorePctPerThousand10s)
		fmt.Fprintf(&b, "| reports: controller RSS growth / heap after | %.1f / %.1f MiB |\n", r.RSSGrowthMiB, r.HeapAfterMiB)
		fmt.Fprintf(&b, "| reports: GET /v1/stats over the 10-minute window | %.1f ms |\n", r.StatsQueryMs)
	}
	if c.Note != "" {
		fmt.Fprintf(&b, "\n%s\n", c.Note)
	}
	return b.String()
}

// CPOptions shape the control-plane benchmark.
type CPOptions struct {
	Bin     string // holds weft-bench
	Out     string
	Shape   CPShape
	Changes int
	// ChangeBudget bounds the time spent on endpoint changes.
	ChangeBudget time.Duration
	MaxBusy      float64
	WaitQuiet    time.Duration
	// ReportEvery and ReportRounds shape the reporting phase: every
	// sidecar sends ReportRounds reports, one every ReportEvery; 0
	// rounds skips it.
	ReportEvery  time.Duration
	ReportRounds int
	Force        bool
	Log          io.Writer
}

// ControlPlane runs the control-plane benchmark: the controller in its own
// process on the proxy core, the simulated sidecars here.
func ControlPlane(ctx context.Context, o CPOptions) (*CPReport, error) {
	work := filepath.Join(o.Out, "work-cp")
	os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	caDir := filepath.Join(work, "ca")
	c, err := ca.LoadOrCreate(caDir)
	if err != nil {
		return nil, err
	}
	rep := &CPReport{Shape: o.Shape, EndpointsPerSidecar: o.Shape.Upstreams * o.Shape.PerService,
		Note: "Simulated sidecars use the sidecar's meshapi stream (mTLS with a certificate of their own service, subscribe, gRPC decodes each ConfigUpdate, ACK), not core/proxy's Client/Apply, which binds a socket per listener."}
	var quiet bool
	var why string
	if rep.Before, quiet, why, err = waitQuiet(ctx, Options{MaxBusy: o.MaxBusy, WaitQuiet: o.WaitQuiet}); err != nil {
		return nil, err
	}
	rep.Quiet = quiet
	if !quiet && !o.Force {
		return nil, fmt.Errorf("refusing to measure the control plane: %s", why)
	}
	lp, err1 := freePort()
	cp, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	addr, ctlAddr := fmt.Sprintf("127.0.0.1:%d", lp), fmt.Sprintf("127.0.0.1:%d", cp)
	startCtl := func() (*proc, error) {
		p, err := startProc("cp-controller", work, proxyCore, nil, filepath.Join(o.Bin, "weft-bench"), "cp-controller",
			"--ca-dir", caDir, "--listen", addr, "--control", ctlAddr, "--services", strconv.Itoa(o.Shape.Services),
			"--per-service", strconv.Itoa(o.Shape.PerService), "--upstreams", strconv.Itoa(o.Shape.Upstreams), "--sidecars", strconv.Itoa(o.Shape.Sidecars))
		if err != nil {
			return nil, err
		}
		return p, waitTCP(ctlAddr, []*proc{p}, 5*time.Minute)
	}
	t0 := time.Now()
	ctl, err := startCtl()
	if err != nil {
		return nil, err
	}
	defer func() { ctl.stop() }()
	rep.InitialCompileMs = float64(time.Since(t0).Milliseconds()) // upper bound: includes process start; refined below
	if b, err := os.ReadFile(filepath.Join(work, "cp-controller.log")); err == nil {
		if _, after, ok := strings.Cut(string(b), "configs in "); ok {
			if d, err := time.ParseDuration(strings.Fields(after)[0]); err == nil {
				rep.InitialCompileMs = float64(d.Microseconds()) / 1000
			}
		}
	}
	time.Sleep(500 * time.Millisecond)
	rss0, _, err := procStats(ctl.pid())
	if err != nil {
		return nil, err
	}
	rep.ControllerRSSMB = float64(rss0) / 1024

	// Sidecars: a key and certificate of their service each.
	sims := make([]*simSidecar, o.Shape.Sidecars)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for i := range sims {
		chain, _, err := c.SignCSR(csr, spiffe.Identity{TrustDomain: TrustDomain, Namespace: "default", Service: o.Shape.svc(i)})
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(chain, keyPEM)
		if err != nil {
			return nil, err
		}
		sims[i] = &simSidecar{instance: o.Shape.sidecar(i), tls: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: c.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	waitAll := func(since time.Time, limit time.Duration) (time.Duration, error) {
		deadline := time.Now().Add(limit)
		for {
			var last time.Time
			missing := 0
			for _, s := range sims {
				at, ok := s.ackedSince(0, since)
				if !ok {
					missing++
				} else if at.After(last) {
					last = at
				}
			}
			if missing == 0 {
				return last.Sub(since), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%d of %d sidecars had not ACKed after %v", missing, len(sims), limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Now()
	for _, s := range sims {
		wg.Go(func() { s.run(sctx, addr) })
	}
	d, err := waitAll(start, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	rep.AllAckedSeconds = d.Seconds()
	o.logf("control plane: %d sidecars ACKed in %.2fs", len(sims), d.Seconds())
	time.Sleep(time.Second)
	rss1, _, err := procStats(ctl.pid())
	if err != nil {
		return nil, err
	}
	rep.RSSPerSidecarKiB = float64(rss1-rss0) / float64(len(sims))

	// Endpoint changes, one at a time.
	bySidecar := map[string]*simSidecar{}
	for _, s := range sims {
		bySidecar[s.instance] = s
	}
	var lat, comp, pub []float64
	_, cpu0, err := procStats(ctl.pid())
	if err != nil {
		return nil, err
	}
	budgetEnd := time.Now().Add(o.ChangeBudget)
	for k := range o.Changes {
		if o.ChangeBudget > 0 && time.Now().After(budgetEnd) {
			rep.Note += fmt.Sprintf(" The endpoint changes stopped after %d of %d: their time budget (%v) ran out.", k, o.Changes, o.ChangeBudget)
			break
		}
		t := time.Now()
		resp, err := http.Post("http://"+ctlAddr+"/change?k="+strconv.Itoa(k*7919), "", nil)
		if err != nil {
			return nil, err
		}
		var cr changeReply
		err = json.NewDecoder(resp.Body).Decode(&cr)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(time.Minute)
		var last time.Time
		for _, id := range cr.Affected {
			s := bySidecar[id]
			for {
				at, ok := s.ackedSince(cr.Version, t)
				if ok {
					last = maxTime(last, at)
					break
				}
				if time.Now().After(deadline) {
					return nil, fmt.Errorf("change %d: sidecar %s did not ACK version %d within a minute", k, id, cr.Version)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		if len(cr.Affected) == 0 {
			return nil, fmt.Errorf("change %d: the controller reports no affected sidecar", k)
		}
		lat = append(lat, float64(last.Sub(t).Microseconds())/1000)
		comp = append(comp, float64(cr.CompileMicros)/1000)
		pub = append(pub, float64(cr.PublishMicros)/1000)
	}
	_, cpu1, err := procStats(ctl.pid())
	if err != nil {
		return nil, err
	}
	rep.Changes = len(lat)
	if len(lat) > 0 {
		rep.CPUPerChangeMs = float64((cpu1 - cpu0).Microseconds()) / 1000 / float64(len(lat))
		q := func(vs []float64, p float64) float64 {
			s := append([]float64(nil), vs...)
			sort.Float64s(s)
			i := int(p*float64(len(s))+0.999999) - 1
			return s[max(0, min(i, len(s)-1))]
		}
		rep.ChangeP50Ms, rep.ChangeP99Ms, rep.ChangeMaxMs = q(lat, 0.5), q(lat, 0.99), q(lat, 1)
		rep.CompileP50Ms, rep.PublishP50Ms = q(comp, 0.5), q(pub, 0.5)
		o.logf("control plane: %d changes, to last ACK p50 %.1fms p99 %.1fms max %.1fms (compile p50 %.1fms, publish p50 %.1fms); controller CPU %.1fms per change",
			len(lat), rep.ChangeP50Ms, rep.ChangeP99Ms, rep.ChangeMaxMs, rep.CompileP50Ms, rep.PublishP50Ms, rep.CPUPerChangeMs)
	}

	if o.ReportRounds > 0 {
		if rep.Reporting, err = measureReporting(ctx, o, sims, addr, ctlAddr, ctl.pid()); err != nil {
			return nil, fmt.Errorf("reporting: %w", err)
		}
	}

	// Reconnect storm.
	ctl.cmd.Process.Kill()
	<-ctl.done
	restarted := time.Now() // the storm counts the new controller's start-up and first compile
	if ctl, err = startCtl(); err != nil {
		return nil, err
	}
	if d, err = waitAll(restarted, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("reconnect storm: %w", err)
	}
	rep.StormSeconds = d.Seconds()
	o.logf("control plane: reconnect storm, all ACKed %.2fs after the controller came back", d.Seconds())

	// Failover. The sidecars start again, each given both replicas while
	// only the first runs (so every one of them ends up on it), then the
	// second starts, then the first is killed.
	cancel()
	wg.Wait()
	lp2, err1 := freePort()
	cp2, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	addr2, ctlAddr2 := fmt.Sprintf("127.0.0.1:%d", lp2), fmt.Sprintf("127.0.0.1:%d", cp2)
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel() // before the wait for the sidecars, deferred first
	start = time.Now()
	for _, s := range sims {
		wg.Go(func() { s.run(fctx, addr, addr2) })
	}
	if _, err = waitAll(start, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("failover: connecting to the first replica: %w", err)
	}
	second, err := startProc("cp-controller-2", work, proxyCore, nil, filepath.Join(o.Bin, "weft-bench"), "cp-controller",
		"--ca-dir", caDir, "--listen", addr2, "--control", ctlAddr2, "--services", strconv.Itoa(o.Shape.Services),
		"--per-service", strconv.Itoa(o.Shape.PerService), "--upstreams", strconv.Itoa(o.Shape.Upstreams), "--sidecars", strconv.Itoa(o.Shape.Sidecars))
	if err != nil {
		return nil, err
	}
	defer second.stop()
	if err := waitTCP(ctlAddr2, []*proc{second}, 5*time.Minute); err != nil {
		return nil, err
	}
	ctl.cmd.Process.Kill()
	<-ctl.done
	killed := time.Now()
	if d, err = waitAll(killed, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	var each []float64
	for _, s := range sims {
		at, _ := s.ackedSince(0, killed)
		each = append(each, at.Sub(killed).Seconds())
	}
	sort.Float64s(each)
	rep.FailoverP50Seconds, rep.FailoverSeconds = each[len(each)/2], d.Seconds()
	o.logf("control plane: failover, %d sidecars ACKed from the second replica %.2fs (p50) and %.2fs (all) after the first was killed",
		len(sims), rep.FailoverP50Seconds, rep.FailoverSeconds)
	return rep, nil
}

func (o *CPOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
