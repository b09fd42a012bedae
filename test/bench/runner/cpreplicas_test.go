package runner

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// The instances file holds the single-controller benchmark's instances,
// and a change moves the endpoint that cpState.change moves.
func TestInstanceRecordsMatchTheControllerBenchmark(t *testing.T) {
	shape := CPShape{Services: 30, PerService: 4, Sidecars: 10, Upstreams: 3}
	recs := instanceRecords(shape)
	c, err := ca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := newCPState(shape, c)
	if len(recs) != len(st.ins) {
		t.Fatalf("%d records, want %d", len(recs), len(st.ins))
	}
	for i, r := range recs {
		in := st.ins[i]
		if r.ID != in.ID || r.Service != in.Service || r.Address != in.Address || r.Ports["mesh"] != in.Ports[model.PortMesh] {
			t.Fatalf("record %d = %+v, want instance %+v", i, r, in)
		}
	}
	for _, k := range []int{0, 7919, 2 * 7919, 31 * 7919} {
		idx, x := moveEndpoint(shape, recs, k)
		st.mu.Lock()
		xs := k % shape.Services
		want := &st.ins[xs*shape.PerService+(k/shape.Services)%shape.PerService]
		st.mu.Unlock()
		if x != xs || recs[idx].ID != want.ID {
			t.Errorf("change %d moved %s of service %d, want %s of %d", k, recs[idx].ID, x, want.ID, xs)
		}
		if recs[idx].Ports["mesh"] != 20001 {
			t.Errorf("change %d: mesh port %d, want 20001", k, recs[idx].Ports["mesh"])
		}
	}
}

// The moved port wraps at 21000, as in cpState.change.
func TestMoveEndpointWraps(t *testing.T) {
	shape := CPShape{Services: 2, PerService: 1, Sidecars: 1, Upstreams: 1}
	recs := instanceRecords(shape)
	recs[0].Ports["mesh"] = 21000
	if idx, _ := moveEndpoint(shape, recs, 0); recs[idx].Ports["mesh"] != 20000 {
		t.Errorf("port after 21000 = %d, want 20000", recs[idx].Ports["mesh"])
	}
}

// The generated policy is valid HCL for the real controller, split into
// files under the policy file limit, with every service's upstreams.
func TestWriteCPPolicyLoads(t *testing.T) {
	for _, shape := range []CPShape{
		{Services: 20, PerService: 1, Sidecars: 1, Upstreams: 2},
		{Services: 250, PerService: 1, Sidecars: 1, Upstreams: 10},
	} {
		dir := t.TempDir()
		if err := writeCPPolicy(dir, shape); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		if want := 1 + (shape.Services+99)/100; len(files) != want {
			t.Errorf("%d services: %d files, want %d", shape.Services, len(files), want)
		}
		for _, f := range files {
			if fi, _ := os.Stat(f); fi.Size() > policyhcl.MaxFileBytes {
				t.Errorf("%s is %d bytes, over the policy file limit", f, fi.Size())
			}
		}
		p, diags, _ := policyhcl.Load(dir)
		if diags.HasErrors() || p == nil {
			t.Fatalf("%d services: policy does not load: %v", shape.Services, diags)
		}
		if len(p.Services) != shape.Services {
			t.Errorf("%d services in the policy, want %d", len(p.Services), shape.Services)
		}
		if s := p.Services[shape.svc(shape.Services-1)]; len(s.Upstreams) != shape.Upstreams || s.Upstreams[0].Service != shape.svc(0) {
			t.Errorf("last service's upstreams %+v, want %d starting at %s", s.Upstreams, shape.Upstreams, shape.svc(0))
		}
	}
}

func TestEndpointProbe(t *testing.T) {
	u := func(addr string, port uint32) *meshapi.ConfigUpdate {
		return &meshapi.ConfigUpdate{Config: &meshapi.ProxyConfig{Upstreams: []*meshapi.Upstream{
			{Endpoints: []*meshapi.Endpoint{{Address: "127.1.0.9", Port: 20000}, {Address: addr, Port: port}}}}}}
	}
	p := &endpointProbe{address: "127.1.0.1", port: 20001, seen: map[string]time.Time{}}
	t0 := time.Unix(100, 0)
	for _, tc := range []struct {
		instance string
		update   *meshapi.ConfigUpdate
		want     bool
	}{
		{"a", u("127.1.0.1", 20000), false}, // the old port
		{"b", u("127.1.0.2", 20001), false}, // another endpoint
		{"c", u("127.1.0.1", 20001), true},
		{"d", &meshapi.ConfigUpdate{}, false},
	} {
		p.check(tc.instance, tc.update, t0)
		if _, ok := p.at(tc.instance); ok != tc.want {
			t.Errorf("%s: seen %v, want %v", tc.instance, ok, tc.want)
		}
	}
	p.check("c", u("127.1.0.1", 20001), t0.Add(time.Second))
	if at, _ := p.at("c"); !at.Equal(t0) {
		t.Errorf("a later ACK moved the first one to %v", at)
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		in      []float64
		p, want float64
	}{
		{nil, 0.5, 0},
		{[]float64{3, 1, 2}, 0.5, 2},
		{[]float64{3, 1, 2}, 1, 3},
		{[]float64{5, 4, 3, 2, 1, 6, 7, 8, 9, 10}, 0.99, 10},
		{[]float64{5, 4, 3, 2, 1, 6, 7, 8, 9, 10}, 0.9, 9},
	} {
		if got := quantile(tc.in, tc.p); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
		}
	}
}

// The report's figures appear in results.md and results.json.
func TestCPReplicasReportRendered(t *testing.T) {
	c := &CPReplicasReport{Shape: CPShape{Services: 1000, PerService: 10, Sidecars: 1000, Upstreams: 10}, Replicas: 3, PollMs: 10,
		FormedSeconds: 4.5, Endpoints: []int{10000, 10000, 10000}, JoinSeconds: 12.25, AllAckedSeconds: 1.75,
		SidecarsPerReplica: []int{330, 340, 330}, Changes: 200, ChangeP50Ms: 41.5, ChangeP99Ms: 88.25, ChangeMaxMs: 95,
		ReplicasPerChange: 2.9, CPUPerChangeMs: 61.5, AdapterCPUPerChangeMs: 20.5, IdleCPUPct: 3.25, RSSMiB: []float64{180.5, 175, 190.25}, LeaderSidecars: 330,
		LeaderLossP50Seconds: 0.5, LeaderLossP99Seconds: 1.02, LeaderLossMaxSeconds: 1.1, LeaderLossAllSeconds: 1.1, NewLeaderSeconds: 2.3}
	md := Markdown(&Report{ControlPlaneReplicas: c})
	for _, want := range []string{
		"3 replicas (Raft): 1000 services x 10 instances = 10000 endpoints",
		"**machine busy: not reportable**",
		"| cluster formed, every replica with all endpoints (10000 / 10000 / 10000) | 4.50 s |",
		"| join tokens minted and spent, all sidecars | 12.25 s |",
		"| cold: all sidecars connected and ACKed (per replica: 330 / 340 / 330) | 1.75 s |",
		"p50 / p99 / max (200 changes, 2.9 replicas each) | 41.5 / 88.2 / 95.0 ms |",
		"| CPU per endpoint change, all replicas and adapters (of which the adapters) | 61.5 (20.5) ms |",
		"| CPU with nothing changing, all replicas and adapters | 3.2 % of a core |",
		"| RSS per replica, sidecars connected | 180.5 / 175.0 / 190.2 MiB |",
		"| leader SIGKILL to new leader | 2.30 s |",
		"| leader SIGKILL to its 330 sidecars' ACK from a survivor, p50 / p99 / max | 0.50 / 1.02 / 1.10 s |",
		"| leader SIGKILL to all 1000 sidecars connected and ACKed (others that reconnected: 0) | 1.10 s |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	b, err := json.Marshal(&Report{ControlPlaneReplicas: c})
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		R map[string]any `json:"control_plane_replicas"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"change_p99_ms": 88.25, "leader_loss_p99_seconds": 1.02, "leader_loss_all_reconnected_seconds": 1.1,
		"controller_cpu_ms_per_change_all_replicas": 61.5, "adapter_cpu_ms_per_change_all_replicas": 20.5, "idle_cpu_pct_all_replicas": 3.25, "all_acked_seconds": 1.75, "replicas": 3.0, "adapter_poll_ms": 10.0} {
		if back.R[k] != want {
			t.Errorf("results.json %s = %v, want %v", k, back.R[k], want)
		}
	}
}

// Three real weft controller replicas with the file adapter, a small
// mesh: every phase completes and fills its figures. No number is
// asserted against a goal: speed goals live in make bench.
func TestControlPlaneReplicasSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weft and starts three controllers")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset is not installed")
	}
	bin := t.TempDir()
	for _, b := range [][]string{{"-o", bin + "/weft", "./cmd/weft"}, {"-o", bin + "/plugins.d/weft-adapter-file", "./examples/adapter-file"}} {
		cmd := exec.Command("go", append([]string{"build"}, b...)...)
		cmd.Dir = "../../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %v: %v\n%s", b, err, out)
		}
	}
	sum := exec.Command("sh", "-c", "sha256sum weft-adapter-file > weft-adapter-file.sha256")
	sum.Dir = filepath.Join(bin, "plugins.d")
	if out, err := sum.CombinedOutput(); err != nil {
		t.Fatalf("pinning the adapter: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log strings.Builder
	shape := CPShape{Services: 20, PerService: 3, Sidecars: 20, Upstreams: 2}
	r, err := ControlPlaneReplicas(ctx, CPReplicasOptions{Replicas: 3, Poll: 20 * time.Millisecond,
		CPOptions: CPOptions{Out: t.TempDir(), Bin: bin, Shape: shape, Changes: 5, MaxBusy: 100, Force: true, Log: &log}})
	if err != nil {
		t.Fatalf("replicas: %v\n%s", err, log.String())
	}
	t.Log(log.String())
	if len(r.Endpoints) != 3 || r.Endpoints[0] != 60 || r.Endpoints[1] != 60 || r.Endpoints[2] != 60 {
		t.Errorf("endpoints per replica %v, want 60 each", r.Endpoints)
	}
	n := 0
	for _, k := range r.SidecarsPerReplica {
		n += k
	}
	if n != shape.Sidecars || len(r.RSSMiB) != 3 || r.RSSMiB[0] <= 0 {
		t.Errorf("sidecars per replica %v, RSS %v", r.SidecarsPerReplica, r.RSSMiB)
	}
	// CPU is read in clock ticks (10 ms): five changes of a 60-endpoint
	// file, sent as deltas, may well cost less than one, so 0 is a fair
	// reading here; a negative one is a bug.
	if r.Changes != 5 || r.ChangeP50Ms <= 0 || r.ChangeMaxMs < r.ChangeP99Ms || r.ChangeP99Ms < r.ChangeP50Ms || r.CPUPerChangeMs < 0 || r.AdapterCPUPerChangeMs > r.CPUPerChangeMs {
		t.Errorf("change figures %+v", r)
	}
	if r.LeaderSidecars == 0 {
		// Each sidecar picks its first replica at random: all 20 avoid
		// the leader once in about 3,000 runs.
		t.Logf("no sidecar was on the leader: its loss measured nothing")
	} else if r.LeaderLossMaxSeconds <= 0 || r.LeaderLossAllSeconds < r.LeaderLossMaxSeconds || r.NewLeaderSeconds <= 0 {
		t.Errorf("leader loss figures %+v (a sidecar on the leader is likely with %d of them on three replicas)", r, shape.Sidecars)
	}
}
