package nomad

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	weftapi "github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// haNet is the third byte of the replicas' loopback addresses:
// 127.0.131.1-3, ports 7400 (sidecars), 7401 (admin) and 7402 (raft).
const haNet = 131

// nomadHA is three `weft controller` replicas in one raft cluster, each
// running its own nomad adapter against the same Nomad agent: the
// deployment examples/nomad/controller-ha.nomad.hcl describes, where every
// replica learns the allocations from Nomad itself (no owner, no
// watchers) and any of them may serve any sidecar.
type nomadHA struct {
	harness.Replicas // Kill, Restart, Sidecars, Leader
	t                *testing.T
}

func haHost(i int) string     { return fmt.Sprintf("127.0.%d.%d", haNet, i+1) }
func haListen(i int) string   { return haHost(i) + ":7400" }
func haRaftAddr(i int) string { return haHost(i) + ":7402" }
func haAdmin(i int) string    { return haHost(i) + ":7401" }

// haControllers is the sidecars' --controller: every replica.
func haControllers() string {
	return haListen(0) + "," + haListen(1) + "," + haListen(2)
}

// haExample is the example job that runs the three replicas.
const haExample = "../../examples/nomad/controller-ha.nomad.hcl"

// exampleReplicas reads the controller task of the example job, as the
// agent parses it with servers set to the three replicas' addresses and
// the other variables to the test's binaries, policy and agent: its
// command and arguments, still holding Nomad's run-time interpolations
// (${NOMAD_ADDR_sidecar} and the like), and where its host volume is
// mounted.
func exampleReplicas(t *testing.T, agent *nomadtest.Agent, policyDir string) (command string, args []string, volume string) {
	t.Helper()
	src, err := os.ReadFile(haExample)
	if err != nil {
		t.Fatal(err)
	}
	vars := fmt.Sprintf("servers = [%q, %q, %q]\nweft_bin = %q\npolicy_dir = %q\nnomad_addr = %q\n",
		haHost(0), haHost(1), haHost(2), binDir, policyDir, agent.Addr)
	job, err := agent.Client().Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(src), Canonicalize: true, Variables: vars})
	if err != nil {
		t.Fatalf("parsing %s: %v", haExample, err)
	}
	task := job.TaskGroups[0].Tasks[0]
	command, _ = task.Config["command"].(string)
	raw, _ := task.Config["args"].([]any)
	for _, a := range raw {
		s, ok := a.(string)
		if !ok {
			t.Fatalf("%s: an argument %v is no string", haExample, a)
		}
		args = append(args, s)
	}
	if len(args) == 0 || args[0] != "controller" || len(task.VolumeMounts) != 1 {
		t.Fatalf("%s: task %s runs %s %v with volume mounts %v; want `weft controller` with one host volume", haExample, task.Name, command, args, task.VolumeMounts)
	}
	return command, args[1:], *task.VolumeMounts[0].Destination
}

// startNomadHA starts the three replicas with the arguments
// examples/nomad/controller-ha.nomad.hcl gives its task, Nomad's
// interpolations filled in as Nomad would for replica i (its addresses
// 127.0.131.i+1 with the job's static ports, its secrets directory
// holding the state key 0400, its host volume a directory of the test),
// NOMAD_TOKEN the agent's management token (the job's template), and
// policy as the bootstrap policy. Each replica runs its own nomad adapter
// against agent. It waits until they formed a cluster that can issue and
// each answers the job's health check, and returns the cluster and the
// CA bundle the sidecars trust.
func startNomadHA(t *testing.T, agent *nomadtest.Agent, policy string) (*nomadHA, string) {
	t.Helper()
	dir := t.TempDir()
	policyDir := harness.WritePolicy(t, dir, policy)
	command, args, volume := exampleReplicas(t, agent, policyDir)
	c := &nomadHA{t: t}
	ctls := make([]*harness.Controller, 3)
	start := time.Now()
	for i := range ctls {
		rdir := filepath.Join(dir, fmt.Sprint("replica", i))
		key := filepath.Join(rdir, "secrets", "state.key")
		harness.WriteFile(t, key, "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=\n")
		if err := os.Chmod(key, 0o400); err != nil {
			t.Fatal(err)
		}
		fill := strings.NewReplacer("${NOMAD_ADDR_sidecar}", haListen(i), "${NOMAD_ADDR_admin}", haAdmin(i),
			"${NOMAD_ADDR_raft}", haRaftAddr(i), "${NOMAD_SECRETS_DIR}", filepath.Join(rdir, "secrets"))
		o := harness.ControllerOptions{Binary: command, Process: harness.CtrlC}
		o.Process.Env = []string{"NOMAD_TOKEN=" + agent.Token}
		for j := 0; j < len(args); j++ {
			a := fill.Replace(args[j])
			if strings.HasPrefix(a, volume+"/") {
				a = filepath.Join(rdir, "volume", strings.TrimPrefix(a, volume+"/"))
			}
			if strings.Contains(a, "${") {
				t.Fatalf("%s: argument %q holds an interpolation this test does not fill in", haExample, args[j])
			}
			// StartController gives these three itself.
			if j+1 < len(args) && (a == "--data-dir" || a == "--listen" || a == "--admin") {
				v := fill.Replace(args[j+1])
				switch a {
				case "--data-dir":
					o.DataDir = filepath.Join(rdir, "volume", strings.TrimPrefix(v, volume+"/"))
				case "--listen":
					o.Listen = v
				case "--admin":
					o.Admin = v
				}
				j++
				continue
			}
			o.Args = append(o.Args, a)
		}
		if o.DataDir == "" || o.Listen != haListen(i) || o.Admin != haAdmin(i) {
			t.Fatalf("%s: replica %d gets --data-dir %q --listen %q --admin %q; want a directory on the volume, %s and %s", haExample, i, o.DataDir, o.Listen, o.Admin, haListen(i), haAdmin(i))
		}
		if i == 0 {
			t.Logf("replica 0 runs the example's task: %s controller --data-dir %s --listen %s --admin %s %s", command, o.DataDir, o.Listen, o.Admin, strings.Join(o.Args, " "))
		}
		ctls[i] = harness.StartController(t, o)
	}
	c.Replicas = harness.NewReplicas(t, ctls)
	for i, ctl := range c.Ctls {
		ctl.WaitFor(t, fmt.Sprintf("replica %d: a leader and three peers", i), 60*time.Second, func(s *harness.Status) bool {
			return s.Raft != nil && s.Raft.CanIssue && len(s.Raft.Peers) == 3
		})
	}
	t.Logf("three replicas formed a raft cluster that can issue in %s", time.Since(start).Round(time.Millisecond))
	for _, i := range c.Alive {
		c.ready(i)
	}
	return c, c.Ctls[0].WaitCACert(t)
}

// ready waits (30s at most) until replica i answers the example job's
// health check as Nomad asks it: GET /v1/health/ready over HTTPS on the
// admin port, without a token and without verifying the certificate
// (tls_skip_verify).
func (c *nomadHA) ready(i int) {
	c.t.Helper()
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // as the job's check: tls_skip_verify
	}}
	defer cl.CloseIdleConnections()
	harness.Eventually(c.t, fmt.Sprintf("replica %d to pass the job's check (GET /v1/health/ready)", i), 30*time.Second, func() error {
		code, body, _, err := harness.Do(cl, mustRequest("GET", "https://"+haAdmin(i)+"/v1/health/ready"))
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
}

func mustRequest(method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		panic(err)
	}
	return req
}

// agree waits, within bound, until every live replica knows exactly ids
// (each replica's own nomad adapter reports each once), all passing, and
// every sidecar connected to it has ACKed what it holds for it now.
func (c *nomadHA) agree(what string, ids []string, bound time.Duration) time.Duration {
	c.t.Helper()
	return harness.Eventually(c.t, what, bound, func() error {
		return c.EachAlive(func(_ int, s *harness.Status) error {
			var got []string
			for _, in := range s.Instances {
				if in.Health != "passing" {
					return fmt.Errorf("sees %s %q", in.ID, in.Health)
				}
				got = append(got, in.ID)
			}
			slices.Sort(got)
			if !slices.Equal(got, ids) {
				return fmt.Errorf("knows instances %v, want %v", got, ids)
			}
			return s.AllAcked()
		})
	})
}

// haPolicyV2 is the policy `weft policy apply` sets through a survivor:
// a route on api named "extra" (retries) and a service extra (no
// allocation runs it) allowed to call api. It changes every sidecar's
// configuration, and each then names "extra": the frontends' upstream
// api gets the route, the apis a rule for the caller extra.
func haPolicyV2() string {
	const apiBlock = "service \"api\" {\n  protocol = \"http\"\n"
	p := strings.Replace(policy, apiBlock, apiBlock+`  route "extra" {
    retry {
      attempts = 2
    }
  }
`, 1)
	if p == policy {
		panic("the api's service block moved: update haPolicyV2")
	}
	return p + `
service "extra" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "extra"
  }
}

intention "extra" "api" {
  action = "allow"
}
`
}

// haMesh is what both Nomad HA proofs start from: the three replicas,
// two api and two frontend allocations whose sidecars are given every
// replica's address, at least one sidecar on the raft leader, and steady
// traffic (GET and POST every 20 ms from each frontend's sidecar to api).
type haMesh struct {
	agent   *nomadtest.Agent
	c       *nomadHA
	roots   string // the CA bundle the sidecars trust
	apis    []*api.AllocationListStub
	fronts  []*api.AllocationListStub
	allocs  []*api.AllocationListStub // apis and fronts
	all     []string                  // their instance IDs, sorted
	leader  int                       // the raft leader when the traffic began
	on      map[string]int            // the replica of each sidecar then
	traffic haTraffic
	stop    func() // stops the traffic, and waits until it stopped
}

// haTraffic is one harness.Traffic per frontend, each calling its own
// sidecar's upstream listener every 20 ms.
type haTraffic []*harness.Traffic

// WaitCalls waits (30s at most for each) until n more calls than now
// succeeded through every frontend's sidecar.
func (h haTraffic) WaitCalls(t *testing.T, what string, n int64) {
	t.Helper()
	for i, tr := range h {
		tr.WaitCalls(t, fmt.Sprintf("%s (frontend %d)", what, i), n)
	}
}

// finish stops the traffic and fails the test if any call failed.
func (m *haMesh) finish(t *testing.T) {
	t.Helper()
	m.stop()
	for i, tr := range m.traffic {
		t.Logf("steady traffic through frontend %d (%s): %d calls answered, %d failed", i, tr.URLs[0], tr.Answered(), tr.Failed())
		if n := tr.Failed(); n != 0 {
			t.Errorf("%d calls through frontend %d failed, want 0: %v", n, i, tr.Errors())
		}
	}
}

// startHAMesh starts haMesh: Nomad, the replicas, the allocations, and
// the traffic, which stops at the test's cleanup (or at m.stop).
func startHAMesh(t *testing.T) *haMesh {
	t.Helper()
	m := &haMesh{agent: nomadtest.Start(t)}
	m.c, m.roots = startNomadHA(t, m.agent, policy)
	c, nc := m.c, m.agent.Client()

	m.agent.Run(t, meshJob("api", 2, haControllers(), m.roots))
	m.agent.Run(t, meshJob("frontend", 2, haControllers(), m.roots, "api"))
	m.apis = m.agent.Running(t, "default", "api", 2, 2*time.Minute)
	m.fronts = m.agent.Running(t, "default", "frontend", 2, 2*time.Minute)
	m.allocs = append(slices.Clone(m.apis), m.fronts...)
	m.all = append(instanceIDs(m.apis, "api"), instanceIDs(m.fronts, "frontend")...)
	slices.Sort(m.all)
	took := c.agree("every replica to know the four instances, passing, with every sidecar ACKed", m.all, 2*time.Minute)
	t.Logf("every replica knows the four allocations from its own nomad adapter, all passing: %s", took.Round(time.Millisecond))

	// At least one sidecar on the leader, so that its kill moves some:
	// restart (through Nomad) the sidecar tasks on other replicas until
	// one picks the leader (each tries the replicas in its own random
	// order). Before any traffic: a restarted sidecar fails calls.
	m.leader = c.Leader()
	for round := 1; ; round++ {
		m.on, _ = c.Sidecars("every sidecar to join and ACK", m.all, time.Minute)
		if slices.Contains(slices.Collect(maps.Values(m.on)), m.leader) {
			t.Logf("sidecars on replicas %v, leader %d, after %d round(s)", m.on, m.leader, round)
			break
		}
		if round == 15 {
			t.Fatalf("after %d rounds of restarting sidecar tasks, none is on the leader %d: %v", round, m.leader, m.on)
		}
		before := c.streams(m.all)
		for _, a := range m.allocs {
			alloc, _, err := nc.Allocations().Info(a.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Allocations().Restart(alloc, "weft-proxy", nil); err != nil {
				t.Fatalf("restarting the sidecar task of %s: %v", a.ID, err)
			}
		}
		harness.Eventually(t, "the restarted sidecars on new streams", time.Minute, func() error {
			now := c.streams(m.all)
			for _, id := range m.all {
				if now[id] == "" || now[id] == before[id] {
					return fmt.Errorf("sidecar %s has no new ACKed stream yet (%q)", id, now[id])
				}
			}
			return nil
		})
	}
	c.agree("every replica to see every sidecar ACKed", m.all, 30*time.Second)

	// The traffic: to each frontend's upstream listener for api.
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	for _, f := range m.fronts {
		admin := fmt.Sprintf("127.0.0.1:%d", port(f, "admin"))
		waitEndpoints(t, admin, "the frontend "+f.ID+" to have both apis", 30*time.Second, time.Now(), instanceIDs(m.apis, "api"))
		tr := &harness.Traffic{Service: "api", Caller: "spiffe://weft.test/ns/default/svc/frontend",
			URLs: []string{fmt.Sprintf("http://127.0.0.1:%d/", port(f, "upstream_api"))}}
		m.traffic = append(m.traffic, tr)
		running.Add(1)
		go func() { defer running.Done(); tr.Run(ctx) }()
	}
	m.stop = func() { cancel(); running.Wait() }
	t.Cleanup(m.stop)
	m.traffic.WaitCalls(t, "the first calls through the mesh", 50)
	return m
}

// streams is when each of ids' sidecars began its ACKed stream on a live
// replica (ConnectedSince), "" for one that has none; a status that
// cannot be read counts as none.
func (c *nomadHA) streams(ids []string) map[string]string {
	since := map[string]string{}
	_ = c.EachAlive(func(_ int, s *harness.Status) error {
		for _, sc := range s.Sidecars {
			if sc.Version != 0 && sc.AckedVersion == sc.Version {
				since[sc.Instance] = sc.ConnectedSince
			}
		}
		return nil
	})
	return since
}

// TestNomadRaftFailoverUnderTraffic is issue 17's proof with Nomad
// sidecars: three controller replicas (raft), each running its own nomad
// adapter against one real Nomad 1.6.1 agent; two api and two frontend
// allocations whose weft-proxy sidecar tasks are given all three
// replicas' addresses; steady traffic (GET and POST every 20 ms from the
// frontends' sidecars to api). The raft leader, holding at least one
// sidecar, is SIGKILLed: every sidecar is on a survivor with its config
// ACKed within 10s (printed); a third api allocation joins through a
// survivor and reaches both frontends; `weft policy apply` through a
// survivor reaches every sidecar (bound 10s, printed) and every replica
// serves the applied index; `weft ca rotate` through a survivor completes
// and every sidecar presents a leaf of the new root (bound 10s, printed);
// the killed replica restarts and rejoins with the applied policy, the
// rotated roots and the same instances. No call fails.
func TestNomadRaftFailoverUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad, three controllers and sidecars; skipped with -short")
	}
	m := startHAMesh(t)
	agent, c, roots, traffic := m.agent, m.c, m.roots, m.traffic
	apis, fronts, allocs, all, leader, on := m.apis, m.fronts, m.allocs, m.all, m.leader, m.on
	weft := filepath.Join(binDir, "weft")

	// SIGKILL the leader: the sidecars it served move to survivors (they
	// need no leader for that), and the survivors elect a new one.
	killed := time.Now()
	c.Kill(leader)
	after, took := c.Sidecars("every sidecar on a survivor with its config ACKed", all, 10*time.Second)
	reconnected := time.Since(killed)
	var moved []string
	for _, id := range all {
		if on[id] == leader {
			moved = append(moved, fmt.Sprintf("%s to replica %d", id, after[id]))
		}
	}
	t.Logf("every sidecar on a survivor, config ACKed, %s after the SIGKILL of the leader, replica %d (bound 10s; waited %s); those of the leader moved: %s",
		reconnected.Round(time.Millisecond), leader, took.Round(time.Millisecond), strings.Join(moved, "; "))
	newLeader := c.Leader()
	t.Logf("replica %d leads; every survivor named it %s after the SIGKILL", newLeader, time.Since(killed).Round(time.Millisecond))
	for _, i := range c.Alive {
		c.ready(i) // Nomad would keep the survivors' allocations healthy
	}
	traffic.WaitCalls(t, "calls after the kill", 50)

	// Without the old leader, a third api allocation joins: a survivor's
	// own nomad adapter learns it and checks its workload identity, its
	// certificate is signed through the new leader, and both frontends
	// get it as an endpoint.
	scaled := time.Now()
	agent.Run(t, meshJob("api", 3, haControllers(), roots))
	apis = agent.Running(t, "default", "api", 3, 2*time.Minute)
	var third string
	for _, a := range apis {
		if !slices.ContainsFunc(allocs, func(b *api.AllocationListStub) bool { return b.ID == a.ID }) {
			allocs = append(allocs, a)
			third = a.ID + "/api"
		}
	}
	all = append(instanceIDs(apis, "api"), instanceIDs(fronts, "frontend")...)
	slices.Sort(all)
	after, _ = c.Sidecars("the third api's sidecar to join a survivor and ACK", all, time.Minute)
	for _, f := range fronts {
		waitEndpoints(t, fmt.Sprintf("127.0.0.1:%d", port(f, "admin")), "the frontend "+f.ID+" to have the three apis", time.Minute, scaled, instanceIDs(apis, "api"))
	}
	c.agree("every survivor to know the five instances, passing, every sidecar ACKed", all, 30*time.Second)
	t.Logf("the third api joined replica %d and reached both frontends %s after the job was scaled (Nomad placing and starting it included)",
		after[third], time.Since(scaled).Round(time.Millisecond))
	traffic.WaitCalls(t, "calls after the scale-up", 50)

	// weft policy apply through a survivor (a follower when one is left,
	// so the write is forwarded to the new leader) reaches every sidecar.
	survivor := c.Alive[0]
	if survivor == newLeader {
		survivor = c.Alive[1]
	}
	v2 := filepath.Join(t.TempDir(), "v2")
	harness.WriteFile(t, filepath.Join(v2, harness.PolicyFile), haPolicyV2())
	applied := time.Now()
	out, stderr, code := c.Ctls[survivor].RunWeft(t, weft, "policy", "apply", v2, "--applied-by", "nomad-ha-test")
	if code != 0 {
		t.Fatalf("weft policy apply through replica %d: exit %d\n%s%s", survivor, code, out, stderr)
	}
	t.Logf("weft policy apply through replica %d returned in %s:\n%s", survivor, time.Since(applied).Round(time.Millisecond), out)
	var hist weftapi.PolicyHistory
	if err := c.Ctls[survivor].Call("GET", "/v1/policy/history", nil, &hist); err != nil || len(hist.Versions) != 1 {
		t.Fatalf("policy history through replica %d: %+v (%v), want the one apply", survivor, hist, err)
	}
	index := hist.Versions[0].Index
	sidecarAdmin := map[string]string{}
	for _, a := range apis {
		sidecarAdmin[a.ID+"/api"] = fmt.Sprintf("127.0.0.1:%d", port(a, "admin"))
	}
	for _, a := range fronts {
		sidecarAdmin[a.ID+"/frontend"] = fmt.Sprintf("127.0.0.1:%d", port(a, "admin"))
	}
	reached := harness.Eventually(t, "the applied policy in every sidecar's config", 10*time.Second, func() error {
		var stale []string
		for _, id := range all {
			code, body, err := harness.Get(context.Background(), "http://"+sidecarAdmin[id]+"/config")
			if err != nil || code != 200 {
				return fmt.Errorf("reading %s's config: %d %v", id, code, err)
			}
			if !strings.Contains(body, `"extra"`) {
				stale = append(stale, id)
			}
		}
		if len(stale) > 0 {
			return fmt.Errorf("the configs of %v do not name extra yet", stale)
		}
		return nil
	})
	t.Logf("the applied policy reached every sidecar %s after the apply started (bound 10s; waited %s)", time.Since(applied).Round(time.Millisecond), reached.Round(time.Millisecond))
	for _, i := range c.Alive {
		s := c.Ctls[i].WaitFor(t, fmt.Sprintf("replica %d to serve the applied policy", i), 5*time.Second, func(s *harness.Status) bool {
			return s.PolicyInForce != nil && s.PolicyInForce.Source == "replicated" && s.PolicyInForce.Index == index
		})
		t.Logf("replica %d serves policy index %d applied by %s", i, s.PolicyInForce.Index, s.PolicyInForce.AppliedBy)
	}
	c.agree("every sidecar to ACK the applied policy", all, 10*time.Second)

	// weft ca rotate through a survivor: it completes, every live replica
	// holds the new root, and every sidecar renews through a survivor.
	var rootsBefore weftapi.RootsReport
	if err := c.Ctls[survivor].Call("GET", "/v1/ca/roots", nil, &rootsBefore); err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()
	out, stderr, code = c.Ctls[survivor].RunWeft(t, weft, "ca", "rotate")
	if code != 0 {
		t.Fatalf("weft ca rotate through replica %d: exit %d\n%s%s", survivor, code, out, stderr)
	}
	t.Logf("weft ca rotate through replica %d returned in %s:\n%s", survivor, time.Since(rotated).Round(time.Millisecond), out)
	var newRootID string
	for _, i := range c.Alive {
		took := harness.Eventually(t, fmt.Sprintf("replica %d holding the rotated roots", i), 5*time.Second, func() error {
			var r weftapi.RootsReport
			if err := c.Ctls[i].Call("GET", "/v1/ca/roots", nil, &r); err != nil {
				return err
			}
			if len(r.Roots) != 2 || !r.Roots[0].Active || r.Roots[1].ID != rootsBefore.Roots[0].ID {
				return fmt.Errorf("roots %+v, want a new active root and the old one (%s)", r.Roots, rootsBefore.Roots[0].ID)
			}
			newRootID = r.Roots[0].ID
			return nil
		})
		t.Logf("replica %d holds the new root %s and the old one %s after the rotate returned", i, newRootID, took.Round(time.Millisecond))
	}
	newRoot, err := harness.ReadCertPEM(c.Ctls[survivor].CACert())
	if err != nil {
		t.Fatal(err)
	}
	renewed := harness.Eventually(t, "every sidecar to present a leaf of the new root", 10*time.Second, func() error {
		for _, a := range allocs {
			chain, err := harness.PresentedChain(fmt.Sprintf("127.0.0.1:%d", port(a, "mesh")))
			if err != nil {
				return err
			}
			if chain[0].CheckSignatureFrom(newRoot) != nil {
				return fmt.Errorf("the sidecar of %s presents a leaf of %s", a.ID, chain[0].Issuer)
			}
		}
		return nil
	})
	t.Logf("every sidecar renewed through a survivor: a leaf of the new root %s after the rotation was asked (bound 10s; waited %s)",
		time.Since(rotated).Round(time.Millisecond), renewed.Round(time.Millisecond))
	traffic.WaitCalls(t, "calls after the rotation", 50)

	// The killed replica restarts and rejoins: three peers, the applied
	// policy, the rotated roots, the same five instances from its own
	// nomad adapter.
	back := time.Now()
	c.Restart(leader)
	s := c.Ctls[leader].WaitFor(t, "the restarted replica to rejoin", 60*time.Second, func(s *harness.Status) bool {
		return s.Raft != nil && s.Raft.CanIssue && len(s.Raft.Peers) == 3 && s.PolicyInForce != nil && s.PolicyInForce.Index == index
	})
	t.Logf("replica %d rejoined %s after its restart: %s, leader %s, policy index %d", leader, time.Since(back).Round(time.Millisecond), s.Raft.State, s.Raft.Leader, s.PolicyInForce.Index)
	c.ready(leader)
	var r weftapi.RootsReport
	if err := c.Ctls[leader].Call("GET", "/v1/ca/roots", nil, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Roots) != 2 || r.Roots[0].ID != newRootID {
		t.Errorf("the restarted replica's roots: %+v, want the rotation's two (active %s)", r.Roots, newRootID)
	}
	c.agree("every replica, the restarted one too, to know the five instances", all, 30*time.Second)
	c.Sidecars("every sidecar on a live replica", all, 10*time.Second)
	traffic.WaitCalls(t, "calls after the restart", 50)

	m.finish(t)
}
