package nomadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/harness"
)

// Version is the only Nomad the harness runs.
const Version = "1.6.1"

// BinaryEnv overrides where the nomad binary is.
const BinaryEnv = "WEFT_NOMAD_BIN"

// CachedBinary is where the build is kept, outside the repository.
func CachedBinary() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "weft", "nomad-"+Version, "nomad")
}

// toolsDir is test/tools/nomad, the module that builds Nomad.
func toolsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "tools", "nomad")
}

var buildMu sync.Mutex

// Binary returns the path of nomad 1.6.1, building it into the cache when
// missing (several minutes, once per machine). A file lock keeps test
// packages that run at the same time from building it twice.
func Binary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		return p, nil
	}
	path := CachedBinary()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("creating the nomad cache directory: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening the nomad build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking the nomad build: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(path); err == nil {
		return path, nil // another package built it meanwhile
	}
	fmt.Fprintf(os.Stderr, "building nomad %s into %s (once per machine; several minutes)\n", Version, path)
	tmp := path + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/hashicorp/nomad")
	cmd.Dir = toolsDir()
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nomad %s in %s: %w\n%s", Version, cmd.Dir, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("installing the nomad build: %w", err)
	}
	return path, nil
}

// Agent is a running dev agent.
type Agent struct {
	// Addr is the HTTP API, http://127.0.0.1:PORT.
	Addr string
	// Token is the management token's secret ID.
	Token string
	// Dir is the agent's directory (config, data, log).
	Dir string

	proc  *harness.Process
	ports *portSlice

	clientMu sync.Mutex
	client   *api.Client // Client's, made again when Token changes
	clientOf string      // the token client carries
}

// agentProcess: the agent runs in a process group of its own and has 15s
// after SIGINT (it leaves the cluster) before the group is killed. It is
// not killed with the thread that started it: test/nomad's goroutines end
// locked to threads that joined network namespaces.
var agentProcess = harness.Options{Signal: os.Interrupt, Grace: 15 * time.Second, Group: true, NoDeathSignal: true}

// Start starts a dev agent for one test (see Launch) and stops it at the
// test's cleanup.
func Start(t testing.TB) *Agent {
	t.Helper()
	a, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nomad agent log (tail):\n%s", a.tail())
		}
		a.Close()
	})
	return a
}

// Options change the agent Launch starts.
type Options struct {
	// NoACL runs Nomad without ACLs (then Token is empty).
	NoACL bool
	// HostVolumes are the client's host volumes, name to path.
	HostVolumes map[string]string
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Agent {
	t.Helper()
	a, err := LaunchWith(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nomad agent log (tail):\n%s", a.tail())
		}
		a.Close()
	})
	return a
}

// Launch starts a dev agent and waits until its node is ready and its
// ACLs are bootstrapped. Close stops it.
func Launch() (*Agent, error) { return LaunchWith(Options{}) }

// LaunchWith is Launch with options.
func LaunchWith(o Options) (*Agent, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weft-nomad-")
	if err != nil {
		return nil, err
	}
	ports, err := harness.FreePorts(3)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	slice, err := lockPortSlice(2 * time.Minute)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	conf := fmt.Sprintf(`data_dir = %q
bind_addr = "127.0.0.1"
ports {
  http = %d
  rpc  = %d
  serf = %d
}
acl {
  enabled = %t
}
# Every test client of the agent comes from 127.0.0.1: the conformance
# tests' adapters (each holding blocking queries), reverse proxies and
# Nomad API clients together passed Nomad's default 100 connections per
# client address once under load (429 "too many concurrent connections").
limits {
  http_max_conns_per_client = 1000
}
client {
  min_dynamic_port = %d
  max_dynamic_port = %d
  cni_path         = %q
%s}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
`, filepath.Join(dir, "data"), ports[0], ports[1], ports[2], !o.NoACL, slice.lo, slice.hi-1, CNIPath, hostVolumes(o.HostVolumes))
	if err := os.WriteFile(filepath.Join(dir, "agent.hcl"), []byte(conf), 0o644); err != nil {
		slice.release()
		os.RemoveAll(dir)
		return nil, err
	}
	a := &Agent{Addr: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), Dir: dir, ports: slice}
	cmd := exec.Command(bin, "agent", "-dev", "-bind", "127.0.0.1", "-network-interface", "lo", "-config", filepath.Join(dir, "agent.hcl"))
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	if a.proc, err = harness.Launch("nomad", cmd, agentProcess); err != nil {
		slice.release()
		os.RemoveAll(dir)
		return nil, err
	}

	// Wait for the HTTP API, then bootstrap ACLs (which needs a leader).
	anon, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		a.Close()
		return nil, err
	}
	err = a.poll(60*time.Second, func() error {
		if o.NoACL {
			_, _, err := anon.Nodes().List(nil)
			return err
		}
		tok, _, err := anon.ACLTokens().Bootstrap(nil)
		if err != nil {
			return err
		}
		a.Token = tok.SecretID
		return nil
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("bootstrapping Nomad ACLs at %s: %w\n%s", a.Addr, err, a.tail())
	}
	c := a.Client()
	err = a.poll(60*time.Second, func() error {
		nodes, _, err := c.Nodes().List(nil)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Status == "ready" && n.Drivers["raw_exec"] != nil && n.Drivers["raw_exec"].Healthy {
				return nil
			}
		}
		return errors.New("no ready node with a healthy raw_exec driver yet")
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("waiting for the Nomad node: %w\n%s", err, a.tail())
	}
	return a, nil
}

// CNIPath is where the agent finds the CNI plugins for bridge networking:
// Debian's containernetworking-plugins installs them there.
const CNIPath = "/usr/lib/cni"

// BridgeReady says why the agent's node cannot run bridge-mode groups
// (nil when it can). Bridge networking needs the agent to run as root,
// the CNI plugins bridge, portmap, firewall, host-local and loopback in
// CNIPath, iptables, and the kernel's bridge module; Nomad's fingerprint
// then reports a "bridge" network on the node.
func (a *Agent) BridgeReady() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (Nomad sets up the allocation's network namespace, bridge and iptables rules)")
	}
	for _, p := range []string{"bridge", "portmap", "firewall", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(CNIPath, p)); err != nil {
			missing = append(missing, "the CNI plugin "+filepath.Join(CNIPath, p)+" (Debian: apt-get install containernetworking-plugins)")
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		missing = append(missing, "iptables (Debian: apt-get install iptables)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("bridge networking needs %s", strings.Join(missing, "; "))
	}
	nodes, _, err := a.Client().Nodes().List(nil)
	if err != nil || len(nodes) == 0 {
		return fmt.Errorf("listing the agent's node: %v", err)
	}
	n, _, err := a.Client().Nodes().Info(nodes[0].ID, nil)
	if err != nil {
		return fmt.Errorf("reading the agent's node: %w", err)
	}
	if n.NodeResources != nil {
		for _, nw := range n.NodeResources.Networks {
			if nw != nil && nw.Mode == "bridge" {
				return nil
			}
		}
	}
	return errors.New("the Nomad node reports no bridge network: is the kernel's bridge module loaded (modprobe bridge)? see the agent's log")
}

// Client returns the agent's API client with the management token. It is
// one client, shared: a client each call kept up to three idle keep-alive
// connections each for 90 s, and a package's tests piled them past the
// agent's limit of connections per address.
func (a *Agent) Client() *api.Client {
	a.clientMu.Lock()
	defer a.clientMu.Unlock()
	if a.client != nil && a.clientOf == a.Token {
		return a.client
	}
	c, err := api.NewClient(&api.Config{Address: a.Addr, SecretID: a.Token})
	if err != nil {
		panic(err) // only a malformed address fails, and Addr is ours
	}
	if a.client != nil {
		a.client.Close()
	}
	a.client, a.clientOf = c, a.Token
	return c
}

// TokenFile writes the management token to a file and returns its path.
func (a *Agent) TokenFile(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "nomad.token")
	if err := os.WriteFile(p, []byte(a.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Log returns the agent's log so far.
func (a *Agent) Log() string { return a.proc.Out.String() }

// LogTail returns the end of the agent's log (its last 80 lines).
func (a *Agent) LogTail() string { return a.tail() }

// CreateNamespace creates a namespace.
func (a *Agent) CreateNamespace(t testing.TB, name string) {
	t.Helper()
	if _, err := a.Client().Namespaces().Register(&api.Namespace{Name: name}, nil); err != nil {
		t.Fatalf("creating Nomad namespace %s: %v", name, err)
	}
}

// Run parses a job file with the agent (as `nomad job run` does) and
// registers it; it returns the job.
func (a *Agent) Run(t testing.TB, jobHCL string) *api.Job {
	t.Helper()
	c := a.Client()
	job, err := c.Jobs().ParseHCL(jobHCL, true)
	if err != nil {
		t.Fatalf("parsing job: %v\n%s", err, jobHCL)
	}
	if _, _, err := c.Jobs().Register(job, nil); err != nil {
		t.Fatalf("registering job %s: %v", *job.ID, err)
	}
	return job
}

// Running waits until job has exactly n running allocations, each with
// its services registered (if the job has any), and returns them (with their
// allocated resources, so their ports).
func (a *Agent) Running(t testing.TB, namespace, job string, n int, timeout time.Duration) []*api.AllocationListStub {
	t.Helper()
	c := a.Client()
	var out []*api.AllocationListStub
	err := a.poll(timeout, func() error {
		allocs, _, err := c.Allocations().List(&api.QueryOptions{
			Namespace: namespace, Filter: fmt.Sprintf("JobID == %q", job),
			Params: map[string]string{"resources": "true", "task_states": "false"},
		})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, al := range allocs {
			switch {
			case al.DesiredStatus != "run":
				if al.ClientStatus == "running" || al.ClientStatus == "pending" {
					return fmt.Errorf("allocation %s is still stopping", al.ID)
				}
			case al.ClientStatus == "running":
				out = append(out, al)
			case al.ClientStatus == "pending":
				return fmt.Errorf("allocation %s is pending", al.ID)
			}
		}
		if len(out) != n {
			return fmt.Errorf("%d running allocations, want %d", len(out), n)
		}
		regs, _, err := c.Jobs().Services(job, &api.QueryOptions{Namespace: namespace})
		if err != nil {
			return err
		}
		if !hasServices(c, namespace, job) {
			return nil
		}
		for _, al := range out {
			found := false
			for _, r := range regs {
				found = found || r.AllocID == al.ID
			}
			if !found {
				return fmt.Errorf("allocation %s has no service registered yet", al.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for job %s: %v\n%s", job, err, a.tail())
	}
	return out
}

// hasServices reports whether a job declares any service.
func hasServices(c *api.Client, namespace, job string) bool {
	j, _, err := c.Jobs().Info(job, &api.QueryOptions{Namespace: namespace})
	if err != nil {
		return true
	}
	for _, g := range j.TaskGroups {
		if len(g.Services) > 0 {
			return true
		}
		for _, t := range g.Tasks {
			if len(t.Services) > 0 {
				return true
			}
		}
	}
	return false
}

// Stop stops a job and purges it.
func (a *Agent) Stop(t testing.TB, namespace, job string) {
	t.Helper()
	if _, _, err := a.Client().Jobs().Deregister(job, true, &api.WriteOptions{Namespace: namespace}); err != nil {
		t.Fatalf("stopping job %s: %v", job, err)
	}
}

// Close stops every job, waits (bounded) for their tasks to exit, then
// stops the agent and removes its directory.
func (a *Agent) Close() {
	c := a.Client()
	if jobs, _, err := c.Jobs().List(&api.QueryOptions{Namespace: "*"}); err == nil {
		for _, j := range jobs {
			c.Jobs().Deregister(j.ID, true, &api.WriteOptions{Namespace: j.Namespace})
		}
		_ = a.poll(20*time.Second, func() error {
			allocs, _, err := c.Allocations().List(&api.QueryOptions{Namespace: "*"})
			if err != nil {
				return nil
			}
			for _, al := range allocs {
				if al.ClientStatus == "running" || al.ClientStatus == "pending" {
					return errors.New("allocations still running")
				}
			}
			return nil
		})
	}
	c.Close()
	a.proc.Stop()
	a.ports.release()
	os.RemoveAll(a.Dir)
}

// poll calls f until it returns nil or timeout passes, and returns its
// last error.
func (a *Agent) poll(timeout time.Duration, f func() error) error {
	return harness.Poll(context.Background(), timeout, 100*time.Millisecond, f)
}

// Poll is harness.Poll, kept here for the adapter tests that use it.
func Poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	return harness.Poll(ctx, timeout, interval, f)
}

// cleanEnv is the test's environment without Nomad variables that would
// point the agent or its tasks elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NOMAD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// tail is the end of the agent's log.
func (a *Agent) tail() string { return harness.Tail(a.proc.Out.String(), 80) }

// hostVolumes are the client stanza's host_volume blocks, in name order.
func hostVolumes(vols map[string]string) string {
	names := make([]string, 0, len(vols))
	for n := range vols {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  host_volume %q {\n    path      = %q\n    read_only = false\n  }\n", n, vols[n])
	}
	return b.String()
}

// Each agent gives its tasks ports of a slice of its own of the span
// test/harness keeps free for schedulers (harness.SchedulerPortsLo to
// SchedulerPortsHi): Nomad hands out a port of its dynamic range whether
// another process holds it or not, so two agents running at once (two
// test packages, say test/nomad and adapters/nomad) with one range could
// give their allocations the same port, and one task would not start. A
// slice is held by an flock on a file of the system's temporary
// directory, so agents of every test process on the machine take
// different slices.
const (
	portSliceSize = 500
	portSlices    = (harness.SchedulerPortsHi - harness.SchedulerPortsLo) / portSliceSize
)

// portLockDir holds the slices' lock files (a test's own directory in
// this package's tests).
var portLockDir = os.TempDir()

// portSlice is a slice of ports [lo, hi) and the lock that holds it.
type portSlice struct {
	lo, hi int
	lock   *os.File
}

// lockPortSlice takes a free slice, trying them from a random one on;
// when every slice is held it tries again until wait has passed.
func lockPortSlice(wait time.Duration) (*portSlice, error) {
	first := int(time.Now().UnixNano() % portSlices)
	var got *portSlice
	err := harness.Poll(context.Background(), wait, 500*time.Millisecond, func() error {
		for i := range portSlices {
			k := (first + i) % portSlices
			path := filepath.Join(portLockDir, fmt.Sprintf("weft-nomadtest-ports-%d.lock", k))
			f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				return fmt.Errorf("opening the port slice lock %s: %w", path, err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				f.Close()
				continue
			}
			lo := harness.SchedulerPortsLo + k*portSliceSize
			got = &portSlice{lo: lo, hi: lo + portSliceSize, lock: f}
			return nil
		}
		return fmt.Errorf("all %d slices of Nomad's dynamic ports (%d-%d) are held by other agents (weft-nomadtest-ports-*.lock in %s): too many Nomad test agents run at once",
			portSlices, harness.SchedulerPortsLo, harness.SchedulerPortsHi-1, portLockDir)
	})
	if err != nil {
		return nil, fmt.Errorf("taking a slice of ports for the Nomad agent: %w", err)
	}
	return got, nil
}

// release gives the slice back (closing the file drops the flock).
func (p *portSlice) release() {
	if p != nil && p.lock != nil {
		p.lock.Close()
		p.lock = nil
	}
}
