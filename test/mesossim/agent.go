package mesossim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// process is one running task's OS process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// launchLocked records a group of tasks, reports them to operators
// (TASK_ADDED), and starts them on the agent in the background.
func (c *Cluster) launchLocked(f *framework, a *agent, exec mesos.ExecutorID, infos []mesos.TaskInfo) {
	fid := *f.info.ID
	for _, ti := range infos {
		if c.tasks[key(fid.Value, ti.TaskID.Value)] != nil {
			c.dropLocked(f, ti, "task ID "+ti.TaskID.Value+" is already in use")
			return
		}
		if ti.Command == nil || (ti.Command.Value == nil && len(ti.Command.Arguments) == 0) {
			c.dropLocked(f, ti, "task "+ti.TaskID.Value+" has no command: the simulator runs only CommandInfo tasks")
			return
		}
	}
	g := &group{c: c, agent: a, executor: exec, ip: c.allocIPLocked(), done: make(chan struct{})}
	staging := mesos.TASK_STAGING
	for _, ti := range infos {
		t := &task{info: ti, group: g, rec: mesos.Task{
			Name: ti.Name, TaskID: ti.TaskID, FrameworkID: fid, AgentID: mesos.AgentID{Value: a.id},
			ExecutorID: &g.executor, State: &staging, Resources: ti.Resources,
			Labels: ti.Labels, Discovery: ti.Discovery, Container: ti.Container, User: &f.info.User,
			HealthCheck: ti.HealthCheck,
		}}
		g.tasks = append(g.tasks, t)
		c.tasks[key(fid.Value, ti.TaskID.Value)] = t
		c.publishLocked(&master.Event{Type: master.Event_TASK_ADDED, TaskAdded: &master.Event_TaskAdded{Task: t.rec}})
	}
	c.logf("launching %d task(s) on %s at %s for framework %s", len(infos), a.id, g.ip, fid.Value)
	go g.start()
}

func (g *group) start() {
	c := g.c
	for _, t := range g.tasks {
		c.mu.Lock()
		c.updateLocked(t, mesos.TASK_STARTING, "", nil)
		c.mu.Unlock()
	}
	started := 0
	for _, t := range g.tasks {
		p, err := g.run(t)
		c.mu.Lock()
		if err != nil {
			reason := mesos.REASON_EXECUTOR_TERMINATED
			c.updateLocked(t, mesos.TASK_FAILED, "Failed to launch: "+err.Error(), &reason)
			c.removeLocked(t)
			c.mu.Unlock()
			continue
		}
		t.proc, t.pid = p, p.cmd.Process.Pid
		started++
		c.updateLocked(t, mesos.TASK_RUNNING, "", nil)
		c.mu.Unlock()
		go g.reap(t)
	}
	if started < len(g.tasks) {
		g.kill(c.opts.KillGrace)
	}
	g.wait()
}

// run starts one task's process in its sandbox, in its own process group.
func (g *group) run(t *task) (*process, error) {
	c := g.c
	dir := c.opts.WorkDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mesossim-"+c.id)
	}
	sandbox := filepath.Join(dir, t.rec.FrameworkID.Value, sanitize(t.rec.TaskID.Value))
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		return nil, fmt.Errorf("creating sandbox: %w", err)
	}
	ci := t.info.Command
	var cmd *exec.Cmd
	if ci.Shell == nil || *ci.Shell {
		cmd = exec.Command("/bin/sh", "-c", ci.GetValue())
	} else {
		path := ci.GetValue()
		args := ci.Arguments
		if path == "" && len(args) > 0 {
			path = args[0]
		}
		if len(args) == 0 {
			args = []string{path}
		}
		cmd = exec.Command(path)
		cmd.Args = args
	}
	cmd.Dir = sandbox
	cmd.Env = g.env(t)
	stdout, err := os.Create(filepath.Join(sandbox, "stdout"))
	if err != nil {
		return nil, fmt.Errorf("creating stdout: %w", err)
	}
	stderr, err := os.Create(filepath.Join(sandbox, "stderr"))
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("creating stderr: %w", err)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	stdout.Close()
	stderr.Close()
	if err != nil {
		return nil, err
	}
	return &process{cmd: cmd, done: make(chan struct{})}, nil
}

// env is what a task sees: its own variables, the Mesos ones, the
// group's address, and its ports (PORT0..., PORTS, and PORT_<NAME> for
// every named DiscoveryInfo port of the group, so a sidecar finds its
// app's port).
func (g *group) env(t *task) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"MESOS_TASK_ID=" + t.rec.TaskID.Value,
		"MESOS_FRAMEWORK_ID=" + t.rec.FrameworkID.Value,
		"MESOS_AGENT_ID=" + t.rec.AgentID.Value,
		"MESOS_EXECUTOR_ID=" + g.executor.Value,
		"MESOS_SANDBOX=.",
		"MESOS_CONTAINER_IP=" + g.ip.String(),
		"HOST=" + g.ip.String(),
		"LIBPROCESS_IP=" + g.ip.String(),
	}
	var ports []string
	for _, r := range t.info.Resources {
		if r.Name != "ports" || r.Ranges == nil {
			continue
		}
		for _, rg := range r.Ranges.Range {
			for p := rg.Begin; p <= rg.End && len(ports) < 100; p++ {
				ports = append(ports, fmt.Sprint(p))
			}
		}
	}
	for i, p := range ports {
		env = append(env, fmt.Sprintf("PORT%d=%s", i, p))
	}
	if len(ports) > 0 {
		env = append(env, "PORT="+ports[0], "PORTS="+strings.Join(ports, ","))
	}
	for _, other := range g.tasks {
		if other.info.Discovery == nil || other.info.Discovery.Ports == nil {
			continue
		}
		for _, p := range other.info.Discovery.Ports.Ports {
			if p.GetName() != "" {
				env = append(env, fmt.Sprintf("PORT_%s=%d", envName(p.GetName()), p.Number))
			}
		}
	}
	if e := t.info.Command.Environment; e != nil {
		for _, v := range e.Variables {
			env = append(env, v.Name+"="+v.GetValue())
		}
	}
	return env
}

// reap waits for a task's process and reports how it ended. A task that
// ends on its own takes the rest of its group down, as Mesos's default
// executor does.
func (g *group) reap(t *task) {
	err := t.proc.cmd.Wait()
	close(t.proc.done)
	c := g.c
	g.mu.Lock()
	killing := g.killing
	g.mu.Unlock()
	c.mu.Lock()
	var ee *exec.ExitError
	switch {
	case killing:
		reason := mesos.REASON_EXECUTOR_TERMINATED
		c.updateLocked(t, mesos.TASK_KILLED, "Command terminated with signal", &reason)
	case err == nil:
		c.updateLocked(t, mesos.TASK_FINISHED, "Command exited with status 0", nil)
	case errors.As(err, &ee):
		reason := mesos.REASON_COMMAND_EXECUTOR_FAILED
		c.updateLocked(t, mesos.TASK_FAILED, "Command "+ee.ProcessState.String(), &reason)
	default:
		reason := mesos.REASON_EXECUTOR_TERMINATED
		c.updateLocked(t, mesos.TASK_FAILED, err.Error(), &reason)
	}
	c.removeLocked(t)
	c.mu.Unlock()
	if !killing {
		g.kill(c.opts.KillGrace)
	}
}

// kill stops every live process of the group: SIGTERM, then SIGKILL
// after grace (at once if grace is 0).
func (g *group) kill(grace time.Duration) {
	g.mu.Lock()
	g.killing = true
	g.mu.Unlock()
	var live []*process
	g.c.mu.Lock()
	for _, t := range g.tasks {
		if t.proc != nil {
			live = append(live, t.proc)
		}
	}
	g.c.mu.Unlock()
	sig := syscall.SIGTERM
	if grace == 0 {
		sig = syscall.SIGKILL
	}
	for _, p := range live {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
	if grace == 0 {
		return
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for _, p := range live {
		select {
		case <-p.done:
		case <-deadline.C:
			for _, q := range live {
				syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
			}
			return
		}
	}
}

// wait returns when every process of the group has exited.
func (g *group) wait() {
	for _, t := range g.tasks {
		g.c.mu.Lock()
		p := t.proc
		g.c.mu.Unlock()
		if p != nil {
			<-p.done
		}
	}
}

func (t *task) signalKill() error {
	t.group.c.mu.Lock()
	p := t.proc
	t.group.c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("crashing task %s: it has no process yet", t.rec.TaskID.Value)
	}
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

func (t *task) lastStatus() mesos.TaskStatus {
	if n := len(t.rec.Statuses); n > 0 {
		return t.rec.Statuses[n-1]
	}
	st := t.rec.GetState()
	return mesos.TaskStatus{TaskID: t.rec.TaskID, State: &st, AgentID: &t.rec.AgentID, Timestamp: now()}
}

// updateLocked moves a task to a new state and reports it: UPDATE to its
// framework, TASK_UPDATED to operators.
func (c *Cluster) updateLocked(t *task, state mesos.TaskState, msg string, reason *mesos.TaskStatus_Reason) {
	c.statusLocked(t, state, msg, reason, nil)
}

// statusLocked is updateLocked with the status's healthy field (nil: no
// health check result in it).
func (c *Cluster) statusLocked(t *task, state mesos.TaskState, msg string, reason *mesos.TaskStatus_Reason, healthy *bool) {
	src := mesos.SOURCE_EXECUTOR
	st := mesos.TaskStatus{
		TaskID: t.rec.TaskID, State: &state, Source: &src, Reason: reason,
		AgentID: &t.rec.AgentID, ExecutorID: &t.group.executor, Timestamp: now(), UUID: newUUIDBytes(),
		Healthy: healthy,
	}
	if healthy != nil {
		r := mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
		st.Reason = &r
	}
	if msg != "" {
		st.Message = &msg
	}
	if state == mesos.TASK_RUNNING || state == mesos.TASK_STARTING {
		ip := t.group.ip.String()
		cid := mesos.ContainerID{Value: t.group.executor.Value}
		proto := mesos.IPv4
		st.ContainerStatus = &mesos.ContainerStatus{
			ContainerID:  &cid,
			NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{Protocol: &proto, IPAddress: &ip}}}},
		}
	}
	t.rec.State = &state
	t.rec.StatusUpdateState = &state
	t.rec.StatusUpdateUUID = st.UUID
	t.rec.Statuses = append(t.rec.Statuses, st)
	fid := t.rec.FrameworkID
	c.seq++
	c.unacked[ackKey(fid.Value, t.rec.TaskID.Value, st.UUID)] = &pendingUpdate{framework: fid.Value, seq: c.seq, status: st}
	c.sendFrameworkLocked(fid.Value, &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}})
	c.publishLocked(&master.Event{Type: master.Event_TASK_UPDATED, TaskUpdated: &master.Event_TaskUpdated{
		FrameworkID: fid, Status: st, State: &state}})
}

// removeLocked moves a terminal task to the completed list.
func (c *Cluster) removeLocked(t *task) {
	k := key(t.rec.FrameworkID.Value, t.rec.TaskID.Value)
	if c.tasks[k] != t {
		return
	}
	delete(c.tasks, k)
	c.completed = append(c.completed, t.rec)
	if len(c.completed) > 1000 {
		c.completed = c.completed[len(c.completed)-1000:]
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

func envName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s)
}

func ackKey(framework, task string, uuid []byte) string {
	return framework + "/" + task + "/" + string(uuid)
}
