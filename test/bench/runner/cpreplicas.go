package runner

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/meshapi"
)

// The control-plane benchmark with replicas (issue 17): Replicas real
// `weft controller` processes forming a Raft cluster on loopback, each
// with its own raft and data directories, the same state key and policy
// directory, and each running the file adapter (examples/adapter-file,
// bin/plugins.d) over the same instances file: the benchmark's 10,000
// endpoints. The simulated sidecars (cp.go) join with a join token each,
// are given every replica's address and choose among them as the real
// sidecar does. An endpoint change is a new instances file (written and
// renamed into place); its latency runs from the rename to the last
// affected sidecar's ACK of a configuration holding the moved endpoint,
// whichever replica that sidecar is on.

// CPReplicasReport is what the replica scenario measured.
type CPReplicasReport struct {
	Shape    CPShape `json:"shape"`
	Replicas int     `json:"replicas"`
	Quiet    bool    `json:"quiet"`
	Before   Load    `json:"machine_before"`
	// PollMs is the file adapter's poll interval: a change waits up to
	// that long before a replica sees it.
	PollMs int `json:"adapter_poll_ms"`
	// FormedSeconds: from starting the replicas to every one reporting a
	// leader, three peers and all the endpoints.
	FormedSeconds float64 `json:"cluster_formed_seconds"`
	// Endpoints: the instances each replica reported once formed.
	Endpoints []int `json:"endpoints_per_replica"`
	// JoinSeconds: minting a join token for every sidecar and spending
	// it (Join RPC) for its certificate.
	JoinSeconds float64 `json:"join_seconds"`
	// AllAckedSeconds: from starting every sidecar at once (each given
	// every replica) until each has ACKed its configuration.
	AllAckedSeconds float64 `json:"all_acked_seconds"`
	// SidecarsPerReplica: where they ended up, in replica order.
	SidecarsPerReplica []int   `json:"sidecars_per_replica"`
	Changes            int     `json:"changes"`
	ChangeP50Ms        float64 `json:"change_p50_ms"`
	ChangeP99Ms        float64 `json:"change_p99_ms"`
	ChangeMaxMs        float64 `json:"change_max_ms"`
	// ReplicasPerChange: on how many replicas, on average, the affected
	// sidecars of one change were.
	ReplicasPerChange float64 `json:"replicas_per_change"`
	// CPUPerChangeMs: CPU time (user and system) of every replica and
	// its adapter plugin over the changes, summed, divided by their
	// number; the adapters' polling between changes included.
	CPUPerChangeMs float64 `json:"controller_cpu_ms_per_change_all_replicas"`
	// AdapterCPUPerChangeMs: of which the adapter plugins.
	AdapterCPUPerChangeMs float64 `json:"adapter_cpu_ms_per_change_all_replicas"`
	// IdleCPUPct: every replica and adapter over 3 s with nothing
	// changing (the adapters' polling, Raft heartbeats), percent of one
	// core.
	IdleCPUPct float64 `json:"idle_cpu_pct_all_replicas"`
	// RSSMiB: each replica's resident memory (the controller process,
	// not its adapter) with the sidecars connected, after the changes.
	RSSMiB []float64 `json:"rss_mib_per_replica"`
	// Leader loss: the Raft leader is killed (SIGKILL, its adapter with
	// it); from the kill to each of its sidecars' first ACK from a
	// survivor, p50, p99 and max, and to every sidecar connected to a
	// survivor with an ACKed configuration.
	LeaderSidecars       int     `json:"leader_sidecars"`
	LeaderLossP50Seconds float64 `json:"leader_loss_p50_seconds"`
	LeaderLossP99Seconds float64 `json:"leader_loss_p99_seconds"`
	LeaderLossMaxSeconds float64 `json:"leader_loss_max_seconds"`
	LeaderLossAllSeconds float64 `json:"leader_loss_all_reconnected_seconds"`
	// OthersReconnected: sidecars on a surviving replica whose stream
	// broke too (0 expected).
	OthersReconnected int `json:"followers_sidecars_reconnected"`
	// NewLeaderSeconds: from the kill until a survivor reports a leader
	// again (polled every 100 ms).
	NewLeaderSeconds float64 `json:"new_leader_seconds"`
	Note             string  `json:"note"`
}

// Markdown renders the replica figures.
func (c *CPReplicasReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Control plane, %d replicas (Raft): %d services x %d instances = %d endpoints from the file adapter on each replica (poll %d ms); %d simulated sidecars given every replica, %d upstream services each%s.\n\n",
		c.Replicas, c.Shape.Services, c.Shape.PerService, c.Shape.Services*c.Shape.PerService, c.PollMs, c.Shape.Sidecars, c.Shape.Upstreams,
		map[bool]string{true: "", false: "; **machine busy: not reportable**"}[c.Quiet])
	b.WriteString("| Figure | Value |\n|---|---|\n")
	fmt.Fprintf(&b, "| cluster formed, every replica with all endpoints (%s) | %.2f s |\n", ints(c.Endpoints), c.FormedSeconds)
	fmt.Fprintf(&b, "| join tokens minted and spent, all sidecars | %.2f s |\n", c.JoinSeconds)
	fmt.Fprintf(&b, "| cold: all sidecars connected and ACKed (per replica: %s) | %.2f s |\n", ints(c.SidecarsPerReplica), c.AllAckedSeconds)
	fmt.Fprintf(&b, "| endpoint change (file renamed) to last ACK on any replica, p50 / p99 / max (%d changes, %.1f replicas each) | %.1f / %.1f / %.1f ms |\n",
		c.Changes, c.ReplicasPerChange, c.ChangeP50Ms, c.ChangeP99Ms, c.ChangeMaxMs)
	fmt.Fprintf(&b, "| CPU per endpoint change, all replicas and adapters (of which the adapters) | %.1f (%.1f) ms |\n", c.CPUPerChangeMs, c.AdapterCPUPerChangeMs)
	fmt.Fprintf(&b, "| CPU with nothing changing, all replicas and adapters | %.1f %% of a core |\n", c.IdleCPUPct)
	fmt.Fprintf(&b, "| RSS per replica, sidecars connected | %s MiB |\n", floats(c.RSSMiB))
	fmt.Fprintf(&b, "| leader SIGKILL to new leader | %.2f s |\n", c.NewLeaderSeconds)
	fmt.Fprintf(&b, "| leader SIGKILL to its %d sidecars' ACK from a survivor, p50 / p99 / max | %.2f / %.2f / %.2f s |\n",
		c.LeaderSidecars, c.LeaderLossP50Seconds, c.LeaderLossP99Seconds, c.LeaderLossMaxSeconds)
	fmt.Fprintf(&b, "| leader SIGKILL to all %d sidecars connected and ACKed (others that reconnected: %d) | %.2f s |\n",
		c.Shape.Sidecars, c.OthersReconnected, c.LeaderLossAllSeconds)
	if c.Note != "" {
		fmt.Fprintf(&b, "\n%s\n", c.Note)
	}
	return b.String()
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " / ")
}

func floats(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strings.Join(s, " / ")
}

// quantile is the nearest-rank p-quantile of vs (0 for none).
func quantile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// endpointProbe waits for one endpoint at one port in the
// configurations the sidecars ACK.
type endpointProbe struct {
	address string
	port    uint32
	mu      sync.Mutex
	seen    map[string]time.Time
}

func (p *endpointProbe) check(instance string, u *meshapi.ConfigUpdate, at time.Time) {
	for _, up := range u.GetConfig().GetUpstreams() {
		for _, e := range up.GetEndpoints() {
			if e.GetAddress() == p.address && e.GetPort() == p.port {
				p.mu.Lock()
				if _, ok := p.seen[instance]; !ok {
					p.seen[instance] = at
				}
				p.mu.Unlock()
				return
			}
		}
	}
}

func (p *endpointProbe) at(instance string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.seen[instance]
	return t, ok
}

// fileRecord is one instance of the file adapter's instances file.
type fileRecord struct {
	ID      string         `json:"id"`
	Service string         `json:"service"`
	Address string         `json:"address"`
	Ports   map[string]int `json:"ports"`
	Health  string         `json:"health"`
}

// instanceRecords are the shape's instances, as newCPState makes them.
func instanceRecords(shape CPShape) []fileRecord {
	var out []fileRecord
	for i := range shape.Services {
		for k := range shape.PerService {
			n := i*shape.PerService + k
			out = append(out, fileRecord{ID: fmt.Sprintf("%s-%d", shape.svc(i), k), Service: shape.svc(i),
				Address: fmt.Sprintf("127.%d.%d.%d", 1+n/62500, n/250%250, 1+n%250), Health: "passing",
				Ports: map[string]int{"app": 8080, "mesh": 20000}})
		}
	}
	return out
}

// moveEndpoint is change k of the single-controller benchmark
// (cpState.change): one endpoint's mesh port moves by one. It returns
// the moved record's index and the service it belongs to.
func moveEndpoint(shape CPShape, recs []fileRecord, k int) (idx, service int) {
	x := k % shape.Services
	idx = x*shape.PerService + (k/shape.Services)%shape.PerService
	p := recs[idx].Ports["mesh"] + 1
	if p > 21000 {
		p = 20000
	}
	recs[idx].Ports = map[string]int{"app": 8080, "mesh": p}
	return idx, x
}

// encodeInstances is the instances file's content.
func encodeInstances(recs []fileRecord) ([]byte, error) {
	return json.Marshal(map[string]any{"instances": recs})
}

// replaceFile writes data to path atomically (a rename), as an
// operator's tooling would, so the adapter never reads half a file.
func replaceFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeCPPolicy writes the shape's policy as HCL, 100 services a file
// (each policy file is bounded at 1 MiB): every service HTTP with its
// upstreams, bound to no scheduler (identity_binding permissive, as the
// single-controller benchmark's policy binds every instance), and one
// intention allowing everything.
func writeCPPolicy(dir string, shape CPShape) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mesh := "mesh {\n  trust_domain     = \"" + TrustDomain + "\"\n  default_action   = \"deny\"\n  identity_binding = \"permissive\"\n}\n\nintention \"*\" \"*\" {\n  action = \"allow\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "mesh.hcl"), []byte(mesh), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	flush := func(n int) error {
		if b.Len() == 0 {
			return nil
		}
		err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("services-%04d.hcl", n)), []byte(b.String()), 0o644)
		b.Reset()
		return err
	}
	for i := range shape.Services {
		fmt.Fprintf(&b, "service %q {\n  protocol = \"http\"\n", shape.svc(i))
		for d := 1; d <= shape.Upstreams; d++ {
			fmt.Fprintf(&b, "  upstream %q {\n    local_port = %d\n  }\n", shape.svc(i+d), 30000+d)
		}
		b.WriteString("}\n\n")
		if (i+1)%100 == 0 {
			if err := flush(i / 100); err != nil {
				return err
			}
		}
	}
	return flush(shape.Services / 100)
}

// replica is one controller process of the cluster.
type replica struct {
	p                  *proc
	listen, admin, raf string
	data               string
	client             *api.Client
	dead               bool // killed on purpose
}

func (r *replica) status(ctx context.Context) (*api.StatusReport, error) {
	if r.client == nil {
		tok, err := api.ReadToken(r.data)
		if err != nil {
			return nil, err
		}
		c, err := api.New(api.Config{Addr: r.admin, Token: tok, CACert: filepath.Join(r.data, "ca"), Timeout: 20 * time.Second})
		if err != nil {
			return nil, err
		}
		r.client = c
	}
	var s api.StatusReport
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return &s, r.client.Call(cctx, "GET", "/v1/status", nil, &s)
}

// treeCPU is the CPU time of pid and of its children (the adapter
// plugins a controller runs).
func treeCPU(pid int) (self, children time.Duration, err error) {
	_, self, err = procStats(pid)
	if err != nil {
		return 0, 0, err
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if _, c, err := procStats(child); err == nil {
				children += c
			}
		}
	}
	return self, children, nil
}

// CPReplicasOptions shape the replica scenario.
type CPReplicasOptions struct {
	CPOptions
	Replicas int
	// Poll is the file adapter's poll interval.
	Poll time.Duration
}

// ControlPlaneReplicas runs the replica scenario; o.Bin holds weft and
// plugins.d/weft-adapter-file (make build).
func ControlPlaneReplicas(ctx context.Context, o CPReplicasOptions) (*CPReplicasReport, error) {
	work := filepath.Join(o.Out, "work-cp-replicas")
	os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	weft := filepath.Join(o.Bin, "weft")
	plugins := filepath.Join(o.Bin, "plugins.d")
	for _, f := range []string{weft, filepath.Join(plugins, "weft-adapter-file"), filepath.Join(plugins, "weft-adapter-file.sha256")} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("the replica scenario needs %s: run make build first (%w)", f, err)
		}
	}
	rep := &CPReplicasReport{Shape: o.Shape, Replicas: o.Replicas, PollMs: int(o.Poll.Milliseconds()),
		Note: "Every replica is pinned to the controller core (0) with its adapter; the runner and its simulated sidecars to core 1. " +
			"The change latency includes the file adapter's poll (up to " + o.Poll.String() + ") and each replica's own adapter reading and parsing the whole file."}
	var quiet bool
	var why string
	var err error
	if rep.Before, quiet, why, err = waitQuiet(ctx, Options{MaxBusy: o.MaxBusy, WaitQuiet: o.WaitQuiet}); err != nil {
		return nil, err
	}
	rep.Quiet = quiet
	if !quiet && !o.Force {
		return nil, fmt.Errorf("refusing to measure the control plane: %s", why)
	}

	recs := instanceRecords(o.Shape)
	instances := filepath.Join(work, "instances.json")
	data, err := encodeInstances(recs)
	if err != nil {
		return nil, err
	}
	if err := replaceFile(instances, data); err != nil {
		return nil, err
	}
	policyDir := filepath.Join(work, "policy")
	if err := writeCPPolicy(policyDir, o.Shape); err != nil {
		return nil, fmt.Errorf("writing the policy: %w", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(work, "state.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}

	reps := make([]*replica, o.Replicas)
	for i := range reps {
		ports := make([]int, 3)
		for j := range ports {
			if ports[j], err = freePort(); err != nil {
				return nil, err
			}
		}
		reps[i] = &replica{listen: fmt.Sprintf("127.0.0.1:%d", ports[0]), admin: fmt.Sprintf("127.0.0.1:%d", ports[1]),
			raf: fmt.Sprintf("127.0.0.1:%d", ports[2]), data: filepath.Join(work, fmt.Sprint("data", i))}
	}
	start := func(i int) error {
		r := reps[i]
		args := []string{weft, "controller", "--policy-dir", policyDir, "--plugin-dir", plugins,
			"--adapter", "file=" + instances, "--adapter-option", "file.poll_interval=" + o.Poll.String(),
			"--listen", r.listen, "--admin", r.admin, "--data-dir", r.data,
			"--raft-dir", filepath.Join(work, fmt.Sprint("raft", i)), "--raft-addr", r.raf, "--state-key-file", keyFile,
			"--bootstrap-expect", strconv.Itoa(len(reps))}
		for j, p := range reps {
			if j != i {
				args = append(args, "--join", p.raf)
			}
		}
		var err error
		r.p, err = startProc(fmt.Sprint("replica", i), work, proxyCore, nil, args...)
		return err
	}
	t0 := time.Now()
	for i := range reps {
		if err := start(i); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, r := range reps {
			if r.p != nil {
				r.p.stop()
			}
		}
	}()
	want := o.Shape.Services * o.Shape.PerService
	rep.Endpoints = make([]int, len(reps))
	var leader string
	for i, r := range reps {
		s, err := waitStatus(ctx, r, reps, 3*time.Minute, func(s *api.StatusReport) bool {
			return s.Raft != nil && s.Raft.CanIssue && len(s.Raft.Peers) == len(reps) && len(s.Instances) == want
		})
		if err != nil {
			return nil, fmt.Errorf("replica %d: waiting for a leader, %d peers and %d instances: %w", i, len(reps), want, err)
		}
		rep.Endpoints[i], leader = len(s.Instances), s.Raft.Leader
	}
	rep.FormedSeconds = time.Since(t0).Seconds()
	o.logf("control plane, %d replicas: formed in %.2fs, leader %s, endpoints %s", len(reps), rep.FormedSeconds, leader, ints(rep.Endpoints))
	li := -1
	for i, r := range reps {
		if r.raf == leader {
			li = i
		}
	}
	if li < 0 {
		return nil, fmt.Errorf("the leader %s is none of the replicas", leader)
	}

	// Sidecars: one key; a join token each, minted on the leader, spent
	// through the replicas in turn.
	roots, err := os.ReadFile(filepath.Join(reps[0].data, "ca", api.CAFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, fmt.Errorf("replica 0's CA bundle holds no certificate")
	}
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, pk)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(pk)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	conns := make([]meshapi.MeshClient, len(reps))
	for i, r := range reps {
		cc, err := grpc.NewClient("passthrough:///"+r.listen, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})), grpc.WithNoProxy())
		if err != nil {
			return nil, err
		}
		defer cc.Close()
		conns[i] = meshapi.NewMeshClient(cc)
	}
	sims := make([]*simSidecar, o.Shape.Sidecars)
	tj := time.Now()
	var jwg sync.WaitGroup
	jerr := make(chan error, len(sims))
	next := make(chan int)
	for range 8 {
		jwg.Go(func() {
			for i := range next {
				var tok api.JoinTokenResponse
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := reps[li].client.Call(cctx, "POST", "/v1/join-tokens", api.JoinTokenRequest{Adapter: "file", Instance: o.Shape.sidecar(i), Service: o.Shape.svc(i)}, &tok)
				if err == nil {
					var cr *meshapi.Credentials
					cr, err = conns[i%len(conns)].Join(cctx, &meshapi.JoinRequest{InstanceId: o.Shape.sidecar(i), JoinToken: tok.Token, CsrDer: csr})
					if err == nil {
						var cert tls.Certificate
						cert, err = tls.X509KeyPair(cr.GetCertChainPem(), keyPEM)
						sims[i] = &simSidecar{instance: o.Shape.sidecar(i), tls: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
					}
				}
				cancel()
				if err != nil {
					jerr <- fmt.Errorf("joining sidecar %s: %w", o.Shape.sidecar(i), err)
				}
			}
		})
	}
	for i := range sims {
		next <- i
	}
	close(next)
	jwg.Wait()
	close(jerr)
	for err := range jerr {
		return nil, err
	}
	rep.JoinSeconds = time.Since(tj).Seconds()
	o.logf("control plane, %d replicas: %d sidecars joined in %.2fs", len(reps), len(sims), rep.JoinSeconds)

	addrs := make([]string, len(reps))
	for i, r := range reps {
		addrs[i] = r.listen
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	begin := time.Now()
	for _, s := range sims {
		wg.Go(func() { s.run(sctx, addrs...) })
	}
	// connected waits until every sidecar has a stream with an ACK on a
	// replica other than dead, and returns when the last got there.
	connected := func(since time.Time, dead string, limit time.Duration) (time.Time, error) {
		deadline := time.Now().Add(limit)
		for {
			var last time.Time
			missing := 0
			for _, s := range sims {
				s.mu.Lock()
				cur, at := s.cur, s.curSince
				s.mu.Unlock()
				if cur == "" || cur == dead {
					missing++
				} else if at.After(since) && at.After(last) {
					last = at
				}
			}
			if missing == 0 {
				return last, nil
			}
			if time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("%d of %d sidecars had no stream with an ACK after %v", missing, len(sims), limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	last, err := connected(begin, "", 3*time.Minute)
	if err != nil {
		return nil, err
	}
	rep.AllAckedSeconds = last.Sub(begin).Seconds()
	onReplica := func() (map[string]int, map[string]string) {
		n, where := map[string]int{}, map[string]string{}
		for _, s := range sims {
			s.mu.Lock()
			n[s.cur]++
			where[s.instance] = s.cur
			s.mu.Unlock()
		}
		return n, where
	}
	n, _ := onReplica()
	for _, a := range addrs {
		rep.SidecarsPerReplica = append(rep.SidecarsPerReplica, n[a])
	}
	o.logf("control plane, %d replicas: %d sidecars ACKed in %.2fs (%s)", len(reps), len(sims), rep.AllAckedSeconds, ints(rep.SidecarsPerReplica))
	time.Sleep(time.Second)

	// Endpoint changes, one at a time, each a new instances file.
	bySidecar := map[string]*simSidecar{}
	for _, s := range sims {
		bySidecar[s.instance] = s
	}
	cpu := func() (ctl, adapters time.Duration, err error) {
		for _, r := range reps {
			c, a, err := treeCPU(r.p.pid())
			if err != nil {
				return 0, 0, err
			}
			ctl, adapters = ctl+c, adapters+a
		}
		return ctl, adapters, nil
	}
	// Idle: what the replicas and their polling adapters take with
	// nothing changing.
	i0, ia0, err := cpu()
	if err != nil {
		return nil, err
	}
	idle := 3 * time.Second
	time.Sleep(idle)
	cpu0, acpu0, err := cpu()
	if err != nil {
		return nil, err
	}
	rep.IdleCPUPct = 100 * ((cpu0 - i0) + (acpu0 - ia0)).Seconds() / idle.Seconds()
	var lat []float64
	var spread int
	budgetEnd := time.Now().Add(o.ChangeBudget)
	for k := range o.Changes {
		if o.ChangeBudget > 0 && time.Now().After(budgetEnd) {
			rep.Note += fmt.Sprintf(" The endpoint changes stopped after %d of %d: their time budget (%v) ran out.", k, o.Changes, o.ChangeBudget)
			break
		}
		idx, x := moveEndpoint(o.Shape, recs, k*7919)
		affected := o.Shape.affected(x)
		if len(affected) == 0 {
			return nil, fmt.Errorf("change %d: no sidecar calls service %s", k, o.Shape.svc(x))
		}
		data, err := encodeInstances(recs)
		if err != nil {
			return nil, err
		}
		p := &endpointProbe{address: recs[idx].Address, port: uint32(recs[idx].Ports["mesh"]), seen: map[string]time.Time{}}
		on := map[string]bool{}
		for _, id := range affected {
			s := bySidecar[id]
			s.mu.Lock()
			s.probe = p
			on[s.cur] = true
			s.mu.Unlock()
		}
		spread += len(on)
		t := time.Now()
		if err := replaceFile(instances, data); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(time.Minute)
		var lastAck time.Time
		for _, id := range affected {
			for {
				at, ok := p.at(id)
				if ok {
					lastAck = maxTime(lastAck, at)
					break
				}
				if time.Now().After(deadline) {
					return nil, fmt.Errorf("change %d: sidecar %s did not ACK %s:%d within a minute", k, id, p.address, p.port)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		lat = append(lat, float64(lastAck.Sub(t).Microseconds())/1000)
	}
	cpu1, acpu1, err := cpu()
	if err != nil {
		return nil, err
	}
	rep.Changes = len(lat)
	if len(lat) > 0 {
		rep.CPUPerChangeMs = float64((cpu1 - cpu0 + acpu1 - acpu0).Microseconds()) / 1000 / float64(len(lat))
		rep.AdapterCPUPerChangeMs = float64((acpu1 - acpu0).Microseconds()) / 1000 / float64(len(lat))
		rep.ChangeP50Ms, rep.ChangeP99Ms, rep.ChangeMaxMs = quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 1)
		rep.ReplicasPerChange = float64(spread) / float64(len(lat))
		o.logf("control plane, %d replicas: %d changes, to last ACK p50 %.1fms p99 %.1fms max %.1fms (%.1f replicas each); CPU %.1fms per change, all replicas",
			len(reps), len(lat), rep.ChangeP50Ms, rep.ChangeP99Ms, rep.ChangeMaxMs, rep.ReplicasPerChange, rep.CPUPerChangeMs)
	}
	for _, r := range reps {
		rss, _, err := procStats(r.p.pid())
		if err != nil {
			return nil, err
		}
		rep.RSSMiB = append(rep.RSSMiB, float64(rss)/1024)
	}

	// Leader loss. The leader may have changed since the cluster formed
	// (a busy machine delays heartbeats): the one killed is the replica
	// that says it leads now.
	s, err := reps[li].status(ctx)
	if err != nil {
		return nil, err
	}
	if s.Raft == nil || s.Raft.Leader != reps[li].raf {
		was := li
		li = -1
		for i, r := range reps {
			if s, err := r.status(ctx); err == nil && s.Raft != nil && s.Raft.Leader == r.raf {
				li = i
			}
		}
		if li < 0 {
			return nil, fmt.Errorf("no replica says it leads now (replica %d said %v); not killing any", was, s.Raft)
		}
		o.logf("control plane, %d replicas: the leader moved to %s since the cluster formed", len(reps), reps[li].raf)
	}
	dead := reps[li].listen
	_, where := onReplica()
	syscall.Kill(-reps[li].p.pid(), syscall.SIGKILL) // its process group: the controller and its adapter
	killed := time.Now()
	reps[li].dead = true
	<-reps[li].p.done
	last, err = connected(killed, dead, 3*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("leader loss: %w", err)
	}
	rep.LeaderLossAllSeconds = last.Sub(killed).Seconds()
	var each []float64
	for _, s := range sims {
		s.mu.Lock()
		at := s.curSince
		s.mu.Unlock()
		if where[s.instance] == dead {
			each = append(each, at.Sub(killed).Seconds())
		} else if at.After(killed) {
			rep.OthersReconnected++
		}
	}
	rep.LeaderSidecars = len(each)
	rep.LeaderLossP50Seconds, rep.LeaderLossP99Seconds, rep.LeaderLossMaxSeconds = quantile(each, 0.5), quantile(each, 0.99), quantile(each, 1)
	for i, r := range reps {
		if i == li {
			continue
		}
		_, err := waitStatus(ctx, r, reps, time.Minute, func(s *api.StatusReport) bool {
			return s.Raft != nil && s.Raft.CanIssue && s.Raft.Leader != "" && s.Raft.Leader != reps[li].raf
		})
		if err != nil {
			return nil, fmt.Errorf("leader loss: replica %d: waiting for a new leader: %w", i, err)
		}
		rep.NewLeaderSeconds = time.Since(killed).Seconds()
		break
	}
	o.logf("control plane, %d replicas: leader killed; its %d sidecars ACKed from a survivor p50 %.2fs p99 %.2fs max %.2fs; all %d connected %.2fs (others reconnected: %d); a new leader within %.2fs",
		len(reps), rep.LeaderSidecars, rep.LeaderLossP50Seconds, rep.LeaderLossP99Seconds, rep.LeaderLossMaxSeconds, len(sims), rep.LeaderLossAllSeconds, rep.OthersReconnected, rep.NewLeaderSeconds)
	return rep, nil
}

// waitStatus polls a replica's GET /v1/status every 100 ms until cond
// holds, the replica exits, or limit passes.
// Any of others exiting ends the wait too.
func waitStatus(ctx context.Context, r *replica, others []*replica, limit time.Duration, cond func(*api.StatusReport) bool) (*api.StatusReport, error) {
	deadline := time.Now().Add(limit)
	var last error
	for {
		for _, o := range append([]*replica{r}, others...) {
			if o.p != nil && !o.dead {
				if err := o.p.exited(); err != nil {
					return nil, err
				}
			}
		}
		s, err := r.status(ctx)
		if err == nil && cond(s) {
			return s, nil
		}
		if err != nil {
			last = err
		} else if s.Raft != nil {
			last = fmt.Errorf("raft %s, leader %q, %d peers, can issue %v; %d instances", s.Raft.State, s.Raft.Leader, len(s.Raft.Peers), s.Raft.CanIssue, len(s.Instances))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not after %v (last: %v)", limit, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
