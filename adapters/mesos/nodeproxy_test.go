package mesos

import (
	"context"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/test/mesossim"
)

// nodeProxyCluster is two agents with, on each, a node-proxy task, a
// node-mode api task and a sidecar-mode web task, all of framework fw.
type nodeProxyCluster struct {
	sim            *mesossim.Cluster
	agentA, agentB string
	mesh           sdk.MeshContext
}

const testFramework = "fw-nodeproxy"

func startNodeProxyCluster(t *testing.T) *nodeProxyCluster {
	t.Helper()
	sim := startSim(t, mesossim.Options{Agents: 2, HeartbeatInterval: time.Second})
	ids := sim.AgentIDs()
	c := &nodeProxyCluster{sim: sim, agentA: ids[0], agentB: ids[1],
		mesh: sdk.MeshContext{JoinKey: []byte("0123456789abcdef0123456789abcdef")}}
	on := func(task mesos.Task, agent string) mesos.Task {
		task.AgentID = mesos.AgentID{Value: agent}
		return task
	}
	proxy := func(id string) mesos.Task {
		running := mesos.TASK_RUNNING
		return mesos.Task{Name: "weft-node-proxy", TaskID: mesos.TaskID{Value: id}, State: &running,
			Labels: labels(LabelProxy, NodeProxyValue)}
	}
	nodeMode := func(id, service string) mesos.Task {
		task := meshedTask(id, service)
		task.Labels = labels("weft.service", service, LabelProxyMode, NodeProxyValue)
		return task
	}
	fid := mesos.FrameworkID{Value: testFramework}
	sim.AddFramework(mesos.FrameworkInfo{ID: &fid, User: "root", Name: "weft-example"},
		on(proxy("proxy-a"), c.agentA), on(proxy("proxy-b"), c.agentB),
		on(nodeMode("api-a", "api"), c.agentA), on(nodeMode("api-b", "api"), c.agentB),
		on(meshedTask("web-a", "web"), c.agentA),
		// A task that is no node proxy: the sidecar of web-a, say.
		on(mesos.Task{Name: "web-sidecar", TaskID: mesos.TaskID{Value: "web-a.proxy"}, State: proxy("x").State}, c.agentA))
	return c
}

// token mints the node-proxy token a framework gets from the controller's
// admin API for task on agent.
func (c *nodeProxyCluster) token(t *testing.T, agent, task string) string {
	t.Helper()
	tok, err := sdk.MintNodeToken(c.mesh, Name, NodeProxyTokenNode(testFramework, agent, task), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (c *nodeProxyCluster) adapter(t *testing.T, watching bool) *Adapter {
	t.Helper()
	a := fastAdapter()
	req := &sdk.ConfigureRequest{Source: c.sim.URLs()[0], Mesh: c.mesh}
	if !watching {
		if diags := sdktestConfigure(t, a, req); len(diags) > 0 {
			t.Fatal(diags)
		}
		return a
	}
	w := watch(t, a, req)
	waitFor(t, w, 10*time.Second, "api-a", "api-b", "web-a")
	return a
}

func sdktestConfigure(t *testing.T, a *Adapter, req *sdk.ConfigureRequest) []sdk.Diagnostic {
	t.Helper()
	r, err := a.Configure(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return r.Diagnostics
}

// TestVerifyNodeProxy is the hostile side of the Mesos node proxy: the
// adapter vouches only for a running node-proxy task, on its own agent,
// for its own agent's node-mode tasks, and for nothing else. Run both
// from the watch's cache and with no watch (a read of the master's state).
func TestVerifyNodeProxy(t *testing.T) {
	c := startNodeProxyCluster(t)
	other := sdk.MeshContext{JoinKey: []byte("another controller's key, 32 b.")}
	otherTok, err := sdk.MintNodeToken(other, Name, NodeProxyTokenNode(testFramework, c.agentA, "proxy-a"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sidecarTok, err := sdk.MintJoinToken(c.mesh, Name, sdk.Instance{ID: "web-a", Service: "web"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	agentTok, err := sdk.MintNodeToken(c.mesh, Name, c.agentA, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good := c.token(t, c.agentA, "proxy-a")
	tampered := []byte(good)
	tampered[len(tokenPrefix)+3] ^= 1 // one bit of the claims
	expired, err := sdk.MintNodeToken(c.mesh, Name, NodeProxyTokenNode(testFramework, c.agentA, "proxy-a"), -time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, credential, instance string
		wantNode, wantService      string
		wantErr                    string
	}{
		{name: "node proxy of agent A, who it is", credential: good, wantNode: c.agentA},
		{name: "its own agent's node-mode task", credential: good, instance: "api-a", wantNode: c.agentA, wantService: "api"},
		{name: "a node-mode task on the other agent", credential: good, instance: "api-b", wantErr: "Mesos placed it on agent " + c.agentB},
		{name: "a sidecar-mode task on its own agent", credential: good, instance: "web-a", wantErr: "did not choose node mode"},
		{name: "an unknown task", credential: good, instance: "nope", wantErr: "not running"},
		{name: "claims agent B for the task on agent A", credential: c.token(t, c.agentB, "proxy-a"), wantErr: "Mesos runs it on agent " + c.agentA},
		{name: "claims agent B's task from agent A's token", credential: c.token(t, c.agentB, "proxy-a"), instance: "api-b", wantErr: "Mesos runs it on agent " + c.agentA},
		{name: "a token for a task that is not a node proxy", credential: c.token(t, c.agentA, "web-a.proxy"), wantErr: "not a node proxy"},
		{name: "a token for a meshed app task", credential: c.token(t, c.agentA, "api-a"), instance: "api-a", wantErr: "not a node proxy"},
		{name: "a sidecar's join token", credential: sidecarTok, instance: "web-a", wantErr: "join token of instance"},
		{name: "a node token for the agent itself", credential: agentTok, wantErr: "not a node-proxy task"},
		{name: "tampered", credential: string(tampered), wantErr: "does not verify"},
		{name: "signed by another controller", credential: otherTok, wantErr: "does not verify"},
		{name: "not a token", credential: "eyJhbGciOi.x.y", wantErr: "not a Weft node-proxy token"},
		{name: "empty", credential: "", wantErr: "not a Weft node-proxy token"},
		{name: "oversized", credential: tokenPrefix + strings.Repeat("A", 1<<20), wantErr: "more than the 4096"},
		{name: "past its expiry: the task's life bounds it", credential: expired, instance: "api-a", wantNode: c.agentA, wantService: "api"},
	}
	for _, mode := range []struct {
		name     string
		watching bool
	}{{"cache", true}, {"no watch", false}} {
		a := c.adapter(t, mode.watching)
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				got, err := a.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{InstanceID: tt.instance, Credential: tt.credential})
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want one containing %q (answer %+v)", err, tt.wantErr, got)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want := sdk.VerifyIdentityResponse{Node: tt.wantNode}
				if tt.instance != "" {
					want.InstanceID, want.Service = tt.instance, tt.wantService
				}
				if *got != want {
					t.Fatalf("got %+v, want %+v", *got, want)
				}
			})
		}
	}
}

// A killed node-proxy task's token is refused: at once from a master read,
// and from the watch's cache as soon as the master's event is applied.
func TestVerifyNodeProxyKilledTask(t *testing.T) {
	c := startNodeProxyCluster(t)
	a := c.adapter(t, true)
	tok := c.token(t, c.agentA, "proxy-a")
	verify := func() error {
		_, err := a.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{InstanceID: "api-a", Credential: tok})
		return err
	}
	if err := verify(); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	if err := c.sim.SetTaskState("proxy-a", mesos.TASK_KILLED); err != nil {
		t.Fatal(err)
	}
	// No wait: a cache that still shows the task running may vouch for it
	// until the event arrives, so the check below is bounded, and the
	// direct read is checked first.
	b := fastAdapter()
	if diags := sdktestConfigure(t, b, &sdk.ConfigureRequest{Source: c.sim.URLs()[0], Mesh: c.mesh}); len(diags) > 0 {
		t.Fatal(diags)
	}
	if _, err := b.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{Credential: tok}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("a killed task's token, read from the master: err = %v", err)
	}
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for {
		err := verify()
		if err != nil && strings.Contains(err.Error(), "not running") {
			t.Logf("the watching adapter refused the killed task's token %v after the kill", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed node proxy's token still accepted after 5s: err = %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, bounded above
	}
	// Agent B's proxy is not affected.
	if _, err := a.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{InstanceID: "api-b", Credential: c.token(t, c.agentB, "proxy-b")}); err != nil {
		t.Fatalf("agent B's node proxy after agent A's was killed: %v", err)
	}
}

func TestParseNodeProxyClaim(t *testing.T) {
	tests := []struct {
		in   string
		want nodeProxyClaim
		ok   bool
	}{
		{in: NodeProxyTokenNode("f", "a", "t"), want: nodeProxyClaim{"f", "a", "t"}, ok: true},
		{in: "mesos-node-proxy/f/a", ok: false},
		{in: "mesos-node-proxy/f/a/t/u", ok: false},
		{in: "mesos-node-proxy//a/t", ok: false},
		{in: "agent-1", ok: false},
		{in: "", ok: false},
	}
	for _, tt := range tests {
		got, ok := parseNodeProxyClaim(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseNodeProxyClaim(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// Translate: weft.proxy_mode puts the mode in Meta; a node-proxy task is
// no instance and no warning; a bad mode is skipped with one.
func TestTranslateProxyMode(t *testing.T) {
	tests := []struct {
		name     string
		labels   []string
		wantMode string
		wantSkip bool
		wantDiag string
	}{
		{name: "node", labels: []string{"weft.service", "api", LabelProxyMode, "node"}, wantMode: "node"},
		{name: "sidecar", labels: []string{"weft.service", "api", LabelProxyMode, "sidecar"}},
		{name: "sidecar wins over a plain label", labels: []string{"weft.service", "api", LabelProxyMode, "sidecar", model.MetaProxyMode, "node"}},
		{name: "a plain label", labels: []string{"weft.service", "api", model.MetaProxyMode, "node"}, wantMode: "node"},
		{name: "no mode", labels: []string{"weft.service", "api"}},
		{name: "application", labels: []string{"weft.service", "api", LabelProxyMode, "application"}, wantSkip: true, wantDiag: "not a proxy mode"},
		{name: "the node proxy itself", labels: []string{LabelProxy, "node"}, wantSkip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := runningTask("t1", func(task *mesos.Task) { task.Labels = labels(tt.labels...) })
			s := &State{Tasks: map[string]mesos.Task{"fw/t1": task}, Agents: map[string]mesos.AgentInfo{}, Frameworks: map[string]mesos.FrameworkInfo{}}
			snap, diags := Translate(s)
			if tt.wantSkip {
				if len(snap.Instances) != 0 {
					t.Fatalf("want no instance, got %+v", snap.Instances)
				}
			} else if len(snap.Instances) != 1 || snap.Instances[0].Meta[model.MetaProxyMode] != tt.wantMode {
				t.Fatalf("want one instance in mode %q, got %+v", tt.wantMode, snap.Instances)
			}
			if tt.wantDiag == "" && len(diags) > 0 || tt.wantDiag != "" && (len(diags) != 1 || !strings.Contains(diags[0].Detail, tt.wantDiag)) {
				t.Fatalf("diagnostics %+v, want %q", diags, tt.wantDiag)
			}
		})
	}
}
