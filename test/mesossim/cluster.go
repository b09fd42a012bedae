package mesossim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

// Options configure a Cluster. The zero value is one master and one agent
// without auth.
type Options struct {
	// Masters is how many masters run (default 1). Master 0 leads first.
	Masters int
	// MasterAddrs, if set, are the loopback host:port each master listens
	// on (one per master); by default each takes a free port on 127.0.0.1.
	MasterAddrs []string
	// Agents is how many agents run tasks (default 1).
	Agents int
	// User and Password, when User is set, make every API call require
	// HTTP Basic auth (realm mesos-master-readwrite), as a master started
	// with --authenticate_http_readwrite does.
	User, Password string
	// HeartbeatInterval between HEARTBEAT events on every stream
	// (default 15s, the real master's).
	HeartbeatInterval time.Duration
	// OfferInterval between rounds of offers (default 200ms).
	OfferInterval time.Duration
	// RecoveryPeriod is how long a newly elected leader answers 503.
	RecoveryPeriod time.Duration
	// AddressBase is the first task-group address; the next groups count
	// up from it. Default: a random 127.x.y.1, so concurrent clusters
	// rarely meet. It must be a loopback address.
	AddressBase netip.Addr
	// KillGrace is how long a killed task has between SIGTERM and SIGKILL
	// (default 3s).
	KillGrace time.Duration
	// WorkDir holds each task's sandbox (its working directory, with
	// stdout and stderr files). Default: a new directory under the
	// system's temporary directory.
	WorkDir string
	// Logf, if set, receives one line per notable thing the cluster does.
	Logf func(format string, args ...any)
}

// Cluster is a set of masters sharing one state, and the agents that run
// their tasks.
type Cluster struct {
	opts Options
	id   string // prefix of every framework, agent and offer ID

	mu         sync.Mutex
	masters    []*masterServer
	leader     int
	recovering time.Time // the leader answers 503 until then
	nextIP     netip.Addr
	seq        int
	frameworks map[string]*framework
	agents     []*agent
	tasks      map[string]*task // by framework ID + "/" + task ID
	completed  []mesos.Task
	offers     map[string]*offer
	unacked    map[string]*pendingUpdate // by framework/task/uuid: resent when the framework resubscribes
	opSubs     map[*stream]struct{}
	closed     bool
	stop       chan struct{}
	wg         sync.WaitGroup // the offer loop
	handlers   sync.WaitGroup // HTTP handlers in flight
}

// Start runs a cluster on loopback. Close stops it and every process it
// started.
func Start(opts Options) (*Cluster, error) {
	if opts.Masters <= 0 {
		opts.Masters = 1
	}
	if opts.Agents <= 0 {
		opts.Agents = 1
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 15 * time.Second
	}
	if opts.OfferInterval <= 0 {
		opts.OfferInterval = 200 * time.Millisecond
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 3 * time.Second
	}
	if !opts.AddressBase.IsValid() {
		opts.AddressBase = netip.AddrFrom4([4]byte{127, byte(100 + randInt(150)), byte(randInt(250)), 1})
	}
	if !opts.AddressBase.IsLoopback() {
		return nil, fmt.Errorf("starting simulator: address base %s is not a loopback address: use one in 127.0.0.0/8", opts.AddressBase)
	}
	c := &Cluster{
		opts:       opts,
		id:         newUUID(),
		nextIP:     opts.AddressBase,
		frameworks: map[string]*framework{},
		tasks:      map[string]*task{},
		offers:     map[string]*offer{},
		unacked:    map[string]*pendingUpdate{},
		opSubs:     map[*stream]struct{}{},
		stop:       make(chan struct{}),
	}
	for i := 0; i < opts.Agents; i++ {
		c.agents = append(c.agents, &agent{
			id:        fmt.Sprintf("%s-S%d", c.id, i),
			hostname:  "127.0.0.1",
			port:      int32(5051 + i),
			reachable: true,
			added:     time.Now(),
		})
	}
	if len(opts.MasterAddrs) > 0 && len(opts.MasterAddrs) != opts.Masters {
		return nil, fmt.Errorf("starting simulator: %d master addresses for %d masters: give one per master", len(opts.MasterAddrs), opts.Masters)
	}
	for i := 0; i < opts.Masters; i++ {
		addr := "127.0.0.1:0"
		if len(opts.MasterAddrs) > 0 {
			addr = opts.MasterAddrs[i]
			host, _, err := net.SplitHostPort(addr)
			if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("starting simulator: master address %q is not a loopback host:port", addr)
			}
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("starting simulated master %d: %w", i, err)
		}
		m := &masterServer{c: c, index: i, ln: ln, addr: ln.Addr().String()}
		m.srv = &http.Server{Handler: m.routes(), ReadHeaderTimeout: 10 * time.Second}
		c.masters = append(c.masters, m)
		go m.srv.Serve(ln)
	}
	c.wg.Add(1)
	go c.offerLoop()
	return c, nil
}

// URLs are the masters' base URLs (http://127.0.0.1:PORT), in index order.
func (c *Cluster) URLs() []string {
	var out []string
	for _, m := range c.masters {
		out = append(out, "http://"+m.addr)
	}
	return out
}

// Leader is the index of the leading master.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// SetLeader moves the leadership to master i, as a failover does: every
// stream of the old leader is cut, the others now redirect to i, and i
// answers 503 for RecoveryPeriod. Tasks keep running on their agents;
// frameworks must subscribe again (with their framework ID) to i.
func (c *Cluster) SetLeader(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.masters) {
		return fmt.Errorf("setting leader: no master %d (the cluster has %d)", i, len(c.masters))
	}
	c.leader = i
	c.recovering = time.Now().Add(c.opts.RecoveryPeriod)
	for s := range c.opSubs {
		s.close()
		delete(c.opSubs, s)
	}
	for _, f := range c.frameworks {
		if f.stream != nil {
			f.stream.close()
			f.stream, f.streamID = nil, ""
		}
	}
	for id := range c.offers {
		delete(c.offers, id)
	}
	c.logf("master %d (%s) is now the leader", i, c.masters[i].addr)
	return nil
}

// Close stops the masters and kills every task process.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	for s := range c.opSubs {
		s.close()
	}
	for _, f := range c.frameworks {
		if f.stream != nil {
			f.stream.close()
		}
	}
	var groups []*group
	seen := map[*group]bool{}
	for _, t := range c.tasks {
		if !seen[t.group] {
			seen[t.group] = true
			groups = append(groups, t.group)
		}
	}
	c.mu.Unlock()
	for _, m := range c.masters {
		m.srv.Close()
	}
	c.handlers.Wait()
	for _, g := range groups {
		g.kill(0)
	}
	for _, g := range groups {
		g.wait()
	}
	c.wg.Wait()
	return nil
}

// TaskInfo is a test's view of one active task.
type TaskInfo struct {
	ID, FrameworkID, AgentID, State, Address string
	PIDs                                     []int
	// Ports are the task's named DiscoveryInfo ports.
	Ports map[string]uint32
}

// Tasks lists the active (non-terminal) tasks, sorted by ID.
func (c *Cluster) Tasks() []TaskInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []TaskInfo
	for _, t := range c.tasks {
		ti := TaskInfo{ID: t.rec.TaskID.Value, FrameworkID: t.rec.FrameworkID.Value, AgentID: t.rec.AgentID.Value,
			State: t.rec.GetState().String(), Address: t.group.ip.String()}
		if t.pid > 0 {
			ti.PIDs = append(ti.PIDs, t.pid)
		}
		if d := t.rec.Discovery; d != nil && d.Ports != nil {
			ti.Ports = map[string]uint32{}
			for _, p := range d.Ports.Ports {
				ti.Ports[p.GetName()] = p.Number
			}
		}
		out = append(out, ti)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CrashTask kills the process of an active task with SIGKILL, as if it
// crashed: the agent reports TASK_FAILED and the rest of its group is
// killed, as Mesos's default executor does.
func (c *Cluster) CrashTask(taskID string) error {
	c.mu.Lock()
	var found *task
	for _, t := range c.tasks {
		if t.rec.TaskID.Value == taskID {
			found = t
		}
	}
	c.mu.Unlock()
	if found == nil {
		return fmt.Errorf("crashing task: no active task %q", taskID)
	}
	return found.signalKill()
}

// AddFramework registers a framework with tasks that were not launched
// through the scheduler API (for operator API tests): each task is
// recorded as given and reported on the operator stream.
func (c *Cluster) AddFramework(info mesos.FrameworkInfo, tasks ...mesos.Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frameworkLocked(info)
	for _, t := range tasks {
		t.FrameworkID = *f.info.ID
		if t.AgentID.Value == "" {
			t.AgentID = mesos.AgentID{Value: c.agents[0].id}
		}
		g := &group{c: c, agent: c.agents[0], ip: netip.MustParseAddr("127.0.0.1"), done: make(chan struct{})}
		close(g.done)
		tk := &task{rec: t, group: g}
		g.tasks = append(g.tasks, tk)
		c.tasks[key(t.FrameworkID.Value, t.TaskID.Value)] = tk
		c.publishLocked(&master.Event{Type: master.Event_TASK_ADDED, TaskAdded: &master.Event_TaskAdded{Task: t}})
	}
}

func (c *Cluster) frameworkLocked(info mesos.FrameworkInfo) *framework {
	if info.ID != nil {
		if f, ok := c.frameworks[info.ID.Value]; ok {
			f.info = info
			return f
		}
	} else {
		c.seq++
		info.ID = &mesos.FrameworkID{Value: fmt.Sprintf("%s-%04d", c.id, c.seq)}
	}
	f := &framework{info: info, registered: time.Now(), filters: map[string]time.Time{}}
	c.frameworks[info.ID.Value] = f
	c.publishLocked(&master.Event{Type: master.Event_FRAMEWORK_ADDED, FrameworkAdded: &master.Event_FrameworkAdded{Framework: f.record()}})
	return f
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// allocIP hands out the next task-group address. Called with c.mu held.
func (c *Cluster) allocIPLocked() netip.Addr {
	ip := c.nextIP
	c.nextIP = c.nextIP.Next()
	if b := c.nextIP.As4(); b[3] == 0 || b[3] == 255 {
		c.nextIP = netip.AddrFrom4([4]byte{b[0], b[1], b[2] + 1, 1})
	}
	return ip
}

func key(frameworkID, taskID string) string { return frameworkID + "/" + taskID }

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randInt(n int64) int {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err)
	}
	return int(v.Int64())
}

var errClosed = errors.New("simulator closed")

// SetTaskState moves a task recorded with AddFramework to a new state, as
// its agent would report it: TASK_UPDATED on the operator stream, and a
// terminal state moves it to the completed tasks.
func (c *Cluster) SetTaskState(taskID string, state mesos.TaskState) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tasks {
		if t.rec.TaskID.Value != taskID {
			continue
		}
		if t.proc != nil {
			return fmt.Errorf("setting task state: task %q runs a process; use CrashTask or a KILL call", taskID)
		}
		c.updateLocked(t, state, "", nil)
		switch state {
		case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR, mesos.TASK_LOST,
			mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
			c.removeLocked(t)
		}
		return nil
	}
	return fmt.Errorf("setting task state: no active task %q", taskID)
}

// SetTaskHealth reports a health check result of a running task that
// declares a health_check, as its executor's health checker does: a
// TASK_RUNNING status with healthy set (reason
// REASON_TASK_HEALTH_CHECK_STATUS_UPDATED), to its framework and on the
// operator stream. The simulator runs no checks itself: tests decide
// when a task becomes healthy or unhealthy.
func (c *Cluster) SetTaskHealth(taskID string, healthy bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tasks {
		if t.rec.TaskID.Value != taskID {
			continue
		}
		if t.rec.HealthCheck == nil {
			return fmt.Errorf("setting task health: task %q declares no health_check", taskID)
		}
		if t.rec.GetState() != mesos.TASK_RUNNING {
			return fmt.Errorf("setting task health: task %q is %s, not TASK_RUNNING", taskID, t.rec.GetState())
		}
		c.statusLocked(t, mesos.TASK_RUNNING, "", nil, &healthy)
		return nil
	}
	return fmt.Errorf("setting task health: no active task %q", taskID)
}

// PartitionAgent cuts an agent off from the masters, as a network
// partition does: the master reports each of its tasks TASK_UNREACHABLE
// (not AGENT_REMOVED) and offers nothing from it. Its processes keep
// running. HealAgent ends the partition.
func (c *Cluster) PartitionAgent(agentID string) error {
	return c.setReachable(agentID, false)
}

// HealAgent reconnects a partitioned agent: its tasks are reported
// TASK_RUNNING again.
func (c *Cluster) HealAgent(agentID string) error {
	return c.setReachable(agentID, true)
}

func (c *Cluster) setReachable(agentID string, reachable bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.agents {
		if a.id != agentID {
			continue
		}
		if a.reachable == reachable {
			return nil
		}
		a.reachable = reachable
		state := mesos.TASK_RUNNING
		var reason *mesos.TaskStatus_Reason
		if !reachable {
			state = mesos.TASK_UNREACHABLE
			r := mesos.REASON_AGENT_REMOVED
			reason = &r
			for id, o := range c.offers {
				if o.agent == a {
					delete(c.offers, id)
				}
			}
		}
		for _, t := range c.tasks {
			if t.group.agent == a {
				c.updateLocked(t, state, "", reason)
			}
		}
		return nil
	}
	return fmt.Errorf("partitioning agent: no agent %q", agentID)
}

// AgentIDs lists the agents' IDs.
func (c *Cluster) AgentIDs() []string {
	var out []string
	for _, a := range c.agents {
		out = append(out, a.id)
	}
	return out
}
