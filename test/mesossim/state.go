package mesossim

import (
	"net/netip"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// message is what both mesos-go codecs can encode: every generated type
// has Marshal for protobuf and MarshalJSON (ffjson) for JSON.
type message interface {
	Marshal() ([]byte, error)
}

// stream is one open event stream (operator or scheduler SUBSCRIBE). The
// cluster never blocks on it: a stream whose buffer is full is cut, and
// its client resubscribes and resyncs, as with a real master.
type stream struct {
	events chan message
	done   chan struct{}
	once   sync.Once
}

func newStream() *stream {
	return &stream{events: make(chan message, 1024), done: make(chan struct{})}
}

func (s *stream) send(m message) {
	select {
	case <-s.done:
	case s.events <- m:
	default:
		s.close()
	}
}

func (s *stream) close() { s.once.Do(func() { close(s.done) }) }

type framework struct {
	info       mesos.FrameworkInfo
	registered time.Time
	stream     *stream
	streamID   string
	suppressed bool
	filters    map[string]time.Time // agent ID -> no offers before
}

func (f *framework) partitionAware() bool {
	for _, c := range f.info.Capabilities {
		if c.Type == mesos.FrameworkInfo_Capability_PARTITION_AWARE {
			return true
		}
	}
	return false
}

func (f *framework) record() master.Response_GetFrameworks_Framework {
	rt := f.registered.UnixNano()
	return master.Response_GetFrameworks_Framework{
		FrameworkInfo:  f.info,
		Active:         true,
		Connected:      f.stream != nil,
		Recovered:      false,
		RegisteredTime: &mesos.TimeInfo{Nanoseconds: rt},
	}
}

type agent struct {
	id        string
	hostname  string
	port      int32
	reachable bool
	added     time.Time
}

func (a *agent) resources() []mesos.Resource {
	return []mesos.Resource{
		scalar("cpus", 8), scalar("mem", 16384), scalar("disk", 65536),
		{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31000, End: 32000}}}},
	}
}

func (a *agent) record() master.Response_GetAgents_Agent {
	rt := a.added.UnixNano()
	return master.Response_GetAgents_Agent{
		AgentInfo: mesos.AgentInfo{
			Hostname:  a.hostname,
			Port:      &a.port,
			ID:        &mesos.AgentID{Value: a.id},
			Resources: a.resources(),
		},
		Active:         a.reachable,
		Version:        "1.11.0",
		PID:            strPtr("slave(1)@" + a.hostname + ":" + itoa(int(a.port))),
		RegisteredTime: &mesos.TimeInfo{Nanoseconds: rt},
		TotalResources: a.resources(),
	}
}

// pendingUpdate is a status update its framework has not acknowledged
// yet; like a real agent, the simulator sends it again (here: when the
// framework resubscribes) until it is.
type pendingUpdate struct {
	framework string
	seq       int
	status    mesos.TaskStatus
}

type offer struct {
	id        string
	framework string
	agent     *agent
}

// task is one launched task: its master record and its process.
type task struct {
	rec   mesos.Task
	info  mesos.TaskInfo
	group *group
	pid   int
	proc  *process
}

// group is what one executor runs: the tasks of a LAUNCH_GROUP (or the
// one task of a LAUNCH), sharing one loopback address.
type group struct {
	c        *Cluster
	agent    *agent
	executor mesos.ExecutorID
	ip       netip.Addr
	tasks    []*task
	done     chan struct{} // closed when every process has exited
	mu       sync.Mutex
	killing  bool
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func strPtr(s string) *string { return &s }

// publishLocked sends an operator event to every operator subscriber.
func (c *Cluster) publishLocked(e *master.Event) {
	for s := range c.opSubs {
		s.send(e)
	}
}

// sendFrameworkLocked sends a scheduler event to a framework's stream, if
// it has one.
func (c *Cluster) sendFrameworkLocked(frameworkID string, e *scheduler.Event) {
	if f := c.frameworks[frameworkID]; f != nil && f.stream != nil {
		f.stream.send(e)
	}
}

// stateLocked is the GET_STATE answer.
func (c *Cluster) stateLocked() *master.Response_GetState {
	return &master.Response_GetState{
		GetTasks:      c.tasksLocked(),
		GetExecutors:  &master.Response_GetExecutors{},
		GetFrameworks: c.frameworksLocked(),
		GetAgents:     c.agentsLocked(),
	}
}

func (c *Cluster) tasksLocked() *master.Response_GetTasks {
	out := &master.Response_GetTasks{}
	for _, t := range c.tasks {
		out.Tasks = append(out.Tasks, t.rec)
	}
	sortTasks(out.Tasks)
	out.CompletedTasks = append(out.CompletedTasks, c.completed...)
	return out
}

func (c *Cluster) frameworksLocked() *master.Response_GetFrameworks {
	out := &master.Response_GetFrameworks{}
	for _, f := range c.frameworks {
		out.Frameworks = append(out.Frameworks, f.record())
	}
	sortFrameworks(out.Frameworks)
	return out
}

func (c *Cluster) agentsLocked() *master.Response_GetAgents {
	out := &master.Response_GetAgents{}
	for _, a := range c.agents {
		out.Agents = append(out.Agents, a.record())
	}
	return out
}
