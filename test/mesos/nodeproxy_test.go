package mesos

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/mesossim"
)

// TestMesosNodeProxy runs the node proxy on Mesos end to end: the
// simulated master with two agents, the example framework with
// --node-proxy (one weft-proxy node proxy per agent, a token for each from
// the controller's admin API), the controller with the Mesos adapter, and
// real weft-proxy processes. api (two instances, one per agent) and batch
// run in node mode without sidecars; frontend keeps its sidecar. Then the
// hostile side, through the controller's real sidecar API with the
// credentials read from the processes as an attacker on an agent would.
func TestMesosNodeProxy(t *testing.T) {
	dir := t.TempDir()
	sim, err := mesossim.Start(mesossim.Options{Agents: 2, HeartbeatInterval: time.Second,
		OfferInterval: 100 * time.Millisecond, WorkDir: filepath.Join(dir, "sandboxes"), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	testdata := filepath.Join("testdata", "nodeproxy")
	dataDir := filepath.Join(dir, "data")
	listen, admin := harness.FreeAddr(t), harness.FreeAddr(t)
	ctl := harness.StartController(t, harness.ControllerOptions{
		Binary: filepath.Join(binDir, "weft"), DataDir: dataDir, Listen: listen, Admin: admin,
		Args:    []string{"--policy-dir", filepath.Join(testdata, "policy"), "--adapter", "mesos=" + sim.URLs()[0]},
		Process: harness.Options{Grace: stopGrace}})
	ctl.WaitFor(t, "the controller and its mesos adapter", 30*time.Second, func(s *harness.Status) bool {
		return len(s.Adapters) == 1 && s.Adapters[0].Running
	})
	startProcess(t, "weft-mesos-framework", "--master", sim.URLs()[0],
		"--controller-admin", "https://"+admin, "--admin-token-file", filepath.Join(dataDir, "admin.token"),
		"--controller", listen, "--trust-bundle", ctl.CACert(),
		"--proxy", filepath.Join(binDir, "weft-proxy"), "--apps", filepath.Join(testdata, "apps.json"), "--node-proxy")

	// Every instance has its stream and acknowledged its configuration:
	// api and batch through their agents' node proxies.
	s := ctl.WaitFor(t, "frontend, two api and batch, each served", 90*time.Second, meshOf(map[string]int{"frontend": 1, "api": 2, "batch": 1}))

	// One weft-proxy task per agent serves the node-mode instances; only
	// frontend has a sidecar task.
	nodeProxy := map[string]mesossim.TaskInfo{} // by agent
	var sidecars []mesossim.TaskInfo
	for _, tk := range sim.Tasks() {
		switch {
		case strings.HasPrefix(tk.ID, "weft-node-proxy."):
			if _, dup := nodeProxy[tk.AgentID]; dup {
				t.Fatalf("two node proxies on agent %s", tk.AgentID)
			}
			nodeProxy[tk.AgentID] = tk
		case strings.HasSuffix(tk.ID, ".proxy"):
			sidecars = append(sidecars, tk)
		}
	}
	agents := sim.AgentIDs()
	if len(nodeProxy) != 2 || len(sidecars) != 1 || !strings.HasPrefix(sidecars[0].ID, "frontend-") {
		t.Fatalf("node proxies %v and sidecars %v: want one node proxy per agent and frontend's sidecar alone", nodeProxy, sidecars)
	}
	byService := map[string][]harness.InstanceStatus{}
	for _, in := range s.Instances {
		byService[in.Service] = append(byService[in.Service], in)
	}
	agentOf := func(in harness.InstanceStatus) string { return in.Labels["mesos.agent_id"] }
	apiOn := map[string]harness.InstanceStatus{}
	for _, in := range byService["api"] {
		apiOn[agentOf(in)] = in
	}
	if len(apiOn) != 2 {
		t.Fatalf("api instances on agents %v: want one on each of %v", apiOn, agents)
	}
	agentA, agentB := agents[0], agents[1]
	appAddr := func(in harness.InstanceStatus) string {
		return net.JoinHostPort(in.Address, strconv.Itoa(in.Ports["app"]))
	}

	t.Run("frontend reaches both node-mode api instances as frontend", func(t *testing.T) {
		seen := map[string]bool{}
		took := harness.Eventually(t, "frontend's calls answered by both api instances", 30*time.Second, func() error {
			a, err := harness.CallThrough(appAddr(byService["frontend"][0]), "/call/api")
			if err != nil {
				return err
			}
			if a.Status != 200 || a.Response.Service != "api" || a.Response.Caller != "spiffe://weft.local/ns/default/svc/frontend" {
				return fmt.Errorf("frontend -> api: %+v", a)
			}
			seen[a.Response.Instance] = true
			if len(seen) < 2 {
				return fmt.Errorf("answered by %v so far", seen)
			}
			return nil
		})
		t.Logf("both api instances answered frontend, seen as spiffe://weft.local/ns/default/svc/frontend, within %v", took.Round(time.Millisecond))
	})

	t.Run("the deny intention refuses batch, a node-mode caller", func(t *testing.T) {
		// The demo app answers 502 when its upstream refuses, with the
		// upstream's status in its answer.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code, body, err := harness.Get(ctx, "http://"+appAddr(byService["batch"][0])+"/call/api")
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Status   int    `json:"status"`
			Response string `json:"response"`
		}
		err = json.Unmarshal([]byte(body), &a)
		if err != nil || code != 502 || a.Status != 403 || !strings.Contains(a.Response, "spiffe://weft.local/ns/default/svc/batch may not call api") {
			t.Fatalf("batch -> api through its node proxy: HTTP %d %s (%v), want the demo app's 502 carrying api's 403", code, body, err)
		}
	})

	t.Run("memory: one node proxy against sidecars", func(t *testing.T) {
		served := map[string]int{}
		for _, in := range s.Instances {
			if in.Service != "frontend" {
				served[agentOf(in)]++
			}
		}
		side := rssMiB(t, sidecars[0].PIDs[0])
		for _, ag := range agents {
			np := rssMiB(t, nodeProxy[ag].PIDs[0])
			t.Logf("RSS: node proxy of agent %s serving %d instances %.1f MiB; frontend's sidecar (1 instance) %.1f MiB", ag, served[ag], np, side)
			if served[ag] >= 2 && np >= float64(served[ag])*side {
				t.Errorf("the node proxy serving %d instances takes %.1f MiB, no less than the %d sidecars it replaces (%.1f MiB)", served[ag], np, served[ag], float64(served[ag])*side)
			}
		}
	})

	// The attacker's view: credentials read from the processes' own
	// environments on the agent.
	tokenA := environ(t, nodeProxy[agentA].PIDs[0], "WEFT_NODE_PROXY_TOKEN")
	tokenB := environ(t, nodeProxy[agentB].PIDs[0], "WEFT_NODE_PROXY_TOKEN")
	sidecarToken := environ(t, sidecars[0].PIDs[0], "WEFT_JOIN_TOKEN")
	mesh := sidecarAPI(t, ctl, listen)
	nodeModeOn := func(agent string) []string {
		var ids []string
		for _, in := range s.Instances {
			if in.Service != "frontend" && agentOf(in) == agent {
				ids = append(ids, in.ID)
			}
		}
		slices.Sort(ids)
		return ids
	}

	t.Run("each node proxy is told its own agent's node-mode tasks", func(t *testing.T) {
		for agent, tok := range map[string]string{agentA: tokenA, agentB: tokenB} {
			ids, err := nodeInstances(mesh, tok)
			if err != nil {
				t.Fatalf("NodeInstances with the node proxy of %s's token: %v", agent, err)
			}
			if want := nodeModeOn(agent); !slices.Equal(ids, want) {
				t.Errorf("NodeInstances for agent %s = %v, want %v", agent, ids, want)
			}
		}
	})

	t.Run("a node proxy cannot get a task on another agent", func(t *testing.T) {
		err := joinWith(mesh, apiOn[agentB].ID, "mesos", tokenA)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "Mesos placed it on agent "+agentB) {
			t.Errorf("agent A's node proxy asking for api on agent B: %v, want PermissionDenied (placed on agent B)", err)
		}
	})

	t.Run("a node proxy cannot get a sidecar-mode task, even on its own agent", func(t *testing.T) {
		front := byService["frontend"][0]
		tok := map[string]string{agentA: tokenA, agentB: tokenB}[agentOf(front)]
		err := joinWith(mesh, front.ID, "mesos", tok)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "did not choose node mode") {
			t.Errorf("the node proxy of frontend's agent asking for frontend: %v, want PermissionDenied (not node mode)", err)
		}
	})

	t.Run("a proxy claiming another agent is refused", func(t *testing.T) {
		// agent A's token, presented by a proxy that says it is agent B's
		// (the token names its task and agent; --node is not believed).
		forged := strings.Replace(tokenA, ".", ".x", 1)
		for name, tok := range map[string]string{"agent A's token for agent B's api": tokenA, "a token altered to name another agent": forged} {
			err := joinWith(mesh, apiOn[agentB].ID, "mesos", tok)
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s: %v, want PermissionDenied", name, err)
			}
		}
	})

	t.Run("an ordinary sidecar cannot claim node mode", func(t *testing.T) {
		if _, err := nodeInstances(mesh, sidecarToken); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "join token of instance") {
			t.Errorf("NodeInstances with frontend's sidecar join token: %v, want PermissionDenied", err)
		}
		if err := joinWith(mesh, apiOn[agentA].ID, "mesos", sidecarToken); status.Code(err) != codes.PermissionDenied {
			t.Errorf("Join for api with frontend's sidecar join token as a credential: %v, want PermissionDenied", err)
		}
	})

	t.Run("a node-proxy token is no join token", func(t *testing.T) {
		// Presented as a plain join token (the controller's node-token
		// path), it names no agent, so it admits nothing.
		err := joinWith(mesh, apiOn[agentA].ID, "", tokenA)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("agent A's node-proxy token as a join token for api on agent A: %v, want PermissionDenied", err)
		}
	})

	t.Run("tampered credentials are refused", func(t *testing.T) {
		dot := strings.LastIndex(tokenA, ".")
		badSig := tokenA[:dot+1] + "AAAA" + tokenA[dot+5:]
		for name, tok := range map[string]string{"signature": badSig, "truncated": tokenA[:len(tokenA)-3], "garbage": "not-a-token"} {
			if _, err := nodeInstances(mesh, tok); status.Code(err) != codes.PermissionDenied {
				t.Errorf("NodeInstances with a %s credential: %v, want PermissionDenied", name, err)
			}
		}
	})

	t.Run("a killed node-proxy task's token is refused, and a new node proxy serves the agent", func(t *testing.T) {
		killed := nodeProxy[agentA]
		if err := sim.CrashTask(killed.ID); err != nil {
			t.Fatal(err)
		}
		took := harness.Eventually(t, "the killed node proxy's token refused", 10*time.Second, func() error {
			if _, err := nodeInstances(mesh, tokenA); status.Code(err) != codes.PermissionDenied {
				return fmt.Errorf("NodeInstances: %v", err)
			}
			return nil
		})
		t.Logf("the killed node proxy's token refused %v after the kill", took.Round(time.Millisecond))
		if err := joinWith(mesh, apiOn[agentA].ID, "mesos", tokenA); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not running") {
			t.Errorf("Join with the killed node proxy's token: %v, want PermissionDenied (not running)", err)
		}
		// The framework launches another on the same agent; it serves
		// the agent's instances again, and frontend reaches both api.
		var replacement mesossim.TaskInfo
		took = harness.Eventually(t, "a new node proxy on agent A", 60*time.Second, func() error {
			for _, tk := range sim.Tasks() {
				if strings.HasPrefix(tk.ID, "weft-node-proxy.") && tk.AgentID == agentA && tk.ID != killed.ID && tk.State == "TASK_RUNNING" && len(tk.PIDs) > 0 {
					replacement = tk
					return nil
				}
			}
			return fmt.Errorf("no new node proxy on %s yet", agentA)
		})
		t.Logf("a new node proxy %s ran on agent A %v later", replacement.ID, took.Round(time.Millisecond))
		// Its own token, for its own task, is good for agent A's tasks.
		ids, err := nodeInstances(mesh, environ(t, replacement.PIDs[0], "WEFT_NODE_PROXY_TOKEN"))
		if want := nodeModeOn(agentA); err != nil || !slices.Equal(ids, want) {
			t.Fatalf("NodeInstances with the new node proxy's token: %v %v, want %v", ids, err, want)
		}
		seen := map[string]bool{}
		harness.Eventually(t, "frontend reaches both api instances again", 60*time.Second, func() error {
			a, err := harness.CallThrough(appAddr(byService["frontend"][0]), "/call/api")
			if err != nil {
				return err
			}
			if a.Status == 200 && a.Response.Caller == "spiffe://weft.local/ns/default/svc/frontend" {
				seen[a.Response.Instance] = true
			}
			if len(seen) < 2 {
				return fmt.Errorf("answered by %v so far (last %+v)", seen, a)
			}
			return nil
		})
	})
}

// rssMiB is a process's resident memory.
func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the memory of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("parsing VmRSS %q: %v", v, err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// environ is variable name of process pid's environment, as it started.
func environ(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("reading the environment of pid %d: %v", pid, err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := strings.CutPrefix(string(kv), name+"="); ok {
			return v
		}
	}
	t.Fatalf("pid %d has no %s", pid, name)
	return ""
}

// sidecarAPI is a client of the controller's sidecar API, verifying it
// with the mesh's root and presenting no certificate.
func sidecarAPI(t *testing.T, ctl *harness.Controller, listen string) meshapi.MeshClient {
	t.Helper()
	pem, err := os.ReadFile(ctl.CACert())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	host, _, _ := net.SplitHostPort(listen)
	cc, err := grpc.NewClient("passthrough:///"+listen, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: host})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return meshapi.NewMeshClient(cc)
}

func nodeInstances(c meshapi.MeshClient, credential string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := c.NodeInstances(ctx, &meshapi.NodeInstancesRequest{CredentialAdapter: "mesos", Credential: credential})
	if err != nil {
		return nil, err
	}
	return r.InstanceIds, nil
}

// joinWith asks for instance's certificate with a credential checked by
// adapter, or, with adapter "", with credential as a join token. The
// CSR's key is thrown away.
func joinWith(c meshapi.MeshClient, instance, adapter, credential string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	req := &meshapi.JoinRequest{InstanceId: instance, CsrDer: csr, CredentialAdapter: adapter, Credential: credential}
	if adapter == "" {
		req.Credential, req.JoinToken = "", credential
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = c.Join(ctx, req)
	return err
}
