package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// Task resources when the apps file says none.
const (
	defaultCPUs  = 0.1
	defaultMem   = 64
	proxyCPUs    = 0.1
	proxyMem     = 32
	refuseOffers = time.Second // how long a declined agent is not offered again
	stopTimeout  = 15 * time.Second
)

// slot is one wanted instance of a service: generation counts its
// launches, so task IDs never repeat.
type slot struct {
	app        *appSpec
	index, gen int
	group      string // executor ID of the current launch, "" when idle
	appTask    string
	proxyTask  string
	running    bool
	agent      string // where the current launch runs
}

func (s *slot) idle() bool { return s.group == "" }

type sched struct {
	cfg      config
	caller   calls.Caller
	info     mesos.FrameworkInfo
	slots    []*slot
	byTask   map[string]*slot
	live     map[string]string // every task not known to have ended -> its agent ID
	http     *http.Client
	masters  []string // base URLs
	stopping bool
	// nodeProxies are the node-proxy tasks (--node-proxy), by agent ID;
	// nodeProxyTask maps each one's task ID back to its agent.
	nodeProxies   map[string]*nodeProxy
	nodeProxyTask map[string]string
	nodeProxySeq  int
}

func newScheduler(cfg config) *sched {
	s := &sched{cfg: cfg, byTask: map[string]*slot{}, live: map[string]string{},
		nodeProxies: map[string]*nodeProxy{}, nodeProxyTask: map[string]string{}, http: &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cfg.adminCAs, MinVersion: tls.VersionTLS12}}}}
	for _, m := range strings.Split(cfg.masters, ",") {
		if m = strings.TrimSpace(m); m != "" {
			s.masters = append(s.masters, strings.TrimSuffix(m, "/"))
		}
	}
	for i := range cfg.apps {
		for n := 0; n < cfg.apps[i].Instances; n++ {
			s.slots = append(s.slots, &slot{app: &cfg.apps[i], index: n})
		}
	}
	failover := (7 * 24 * time.Hour).Seconds()
	s.info = mesos.FrameworkInfo{User: cfg.user, Name: cfg.name, FailoverTimeout: &failover,
		Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE}}}
	return s
}

// run subscribes and handles events until ctx ends, resubscribing with
// backoff when the stream breaks; then it stops every task and tears down.
func (s *sched) run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := s.session(ctx)
		if s.stopping {
			return err
		}
		log.Printf("event stream ended: %v; resubscribing in %v", err, backoff)
		select {
		case <-ctx.Done():
			return s.session(ctx) // still subscribed to nothing: one more try to stop tasks
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// leader asks the masters, in turn, where the leader is (GET
// /master/redirect answers 307 with a scheme-relative Location).
func (s *sched) leader(ctx context.Context) (string, error) {
	cl := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var errs []error
	for _, m := range s.masters {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m+"/master/redirect", nil)
		if err != nil {
			return "", fmt.Errorf("finding the leading master: %w", err)
		}
		if s.cfg.mesosUser != "" {
			req.SetBasicAuth(s.cfg.mesosUser, s.cfg.mesosPassword)
		}
		resp, err := cl.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp.Body.Close()
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusTemporaryRedirect || err != nil || loc.Host == "" {
			errs = append(errs, fmt.Errorf("%s/master/redirect answered HTTP %d, Location %q", m, resp.StatusCode, resp.Header.Get("Location")))
			continue
		}
		return loc.Scheme + "://" + loc.Host, nil
	}
	return "", fmt.Errorf("finding the leading master: %w", errors.Join(errs...))
}

// session is one subscription, to the leader. mesos-go's client follows
// a redirect for SUBSCRIBE only and sends later calls to the endpoint it
// was made with, so each session gets a client made for the leader.
func (s *sched) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leader, err := s.leader(sctx)
	if err != nil {
		return err
	}
	opts := []httpcli.Opt{httpcli.Endpoint(leader + "/api/v1/scheduler"), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf])}
	if s.cfg.mesosUser != "" {
		opts = append(opts, httpcli.Do(httpcli.With(httpcli.BasicAuth(s.cfg.mesosUser, s.cfg.mesosPassword))))
	}
	cli := httpcli.New(opts...)
	s.caller = httpsched.NewCaller(cli)
	resp, err := s.caller.Call(sctx, calls.Subscribe(&s.info))
	if err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	defer resp.Close()
	events := make(chan *scheduler.Event)
	failed := make(chan error, 1)
	go func() {
		for {
			var ev scheduler.Event
			if err := resp.Decode(&ev); err != nil {
				failed <- err
				return
			}
			select {
			case events <- &ev:
			case <-sctx.Done():
				return
			}
		}
	}()
	var stopDeadline <-chan time.Time
	done := ctx.Done()
	for {
		select {
		case <-done:
			done = nil
			s.stopping = true
			stopDeadline = time.After(stopTimeout)
			if s.info.ID == nil {
				return nil
			}
			s.killAll(sctx)
			if s.allIdle() {
				return s.teardown(sctx)
			}
		case <-stopDeadline:
			log.Printf("tasks still running %v after the stop; tearing down anyway", stopTimeout)
			return s.teardown(sctx)
		case err := <-failed:
			return err
		case ev := <-events:
			if err := s.handle(sctx, ev); err != nil {
				return err
			}
			if s.stopping && s.info.ID != nil && s.allIdle() {
				return s.teardown(sctx)
			}
		}
	}
}

func (s *sched) handle(ctx context.Context, ev *scheduler.Event) error {
	switch ev.Type {
	case scheduler.Event_SUBSCRIBED:
		id := ev.Subscribed.GetFrameworkID()
		s.info.ID = id
		log.Printf("subscribed as framework %s", id.GetValue())
		// Learn what became of our tasks while we were away.
		var tasks []scheduler.Call_Reconcile_Task
		for t := range s.live {
			tasks = append(tasks, scheduler.Call_Reconcile_Task{TaskID: mesos.TaskID{Value: t}})
		}
		if len(tasks) > 0 {
			s.call(ctx, &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{Tasks: tasks}})
		}
		if s.stopping {
			s.killAll(ctx)
		}
	case scheduler.Event_OFFERS:
		s.offers(ctx, ev.Offers.Offers)
	case scheduler.Event_UPDATE:
		s.update(ctx, ev.Update.Status)
	case scheduler.Event_ERROR:
		return fmt.Errorf("the master says: %s", ev.Error.Message)
	case scheduler.Event_RESCIND, scheduler.Event_HEARTBEAT, scheduler.Event_FAILURE, scheduler.Event_MESSAGE:
	}
	return nil
}

func (s *sched) call(ctx context.Context, c *scheduler.Call) {
	c = c.With(calls.Framework(s.info.ID.GetValue()))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := calls.CallNoData(cctx, s.caller, c); err != nil {
		log.Printf("%s call failed: %v", c.Type, err)
	}
}

// offers launches idle slots from the offers and declines the rest.
func (s *sched) offers(ctx context.Context, offers []mesos.Offer) {
	for _, o := range offers {
		var ops []mesos.Offer_Operation
		if !s.stopping {
			ops = s.fill(ctx, o)
		}
		if len(ops) == 0 {
			s.call(ctx, calls.Decline(o.ID).With(calls.RefuseSeconds(refuseOffers)))
			continue
		}
		s.call(ctx, calls.Accept(calls.OfferOperations(ops).WithOffers(o.ID)).With(calls.RefuseSeconds(refuseOffers)))
	}
}

// fill plans as many idle slots as the offer holds, one task group each.
func (s *sched) fill(ctx context.Context, o mesos.Offer) []mesos.Offer_Operation {
	cpus, mem := scalar(o.Resources, "cpus"), scalar(o.Resources, "mem")
	ports := portsOf(o.Resources)
	var ops []mesos.Offer_Operation
	if s.cfg.nodeProxy && s.nodeProxies[o.AgentID.Value] == nil && cpus >= proxyCPUs && mem >= proxyMem {
		// First the agent's node proxy (nodeproxy.go).
		op, err := s.launchNodeProxy(ctx, o.AgentID)
		if err != nil {
			log.Printf("not launching the node proxy of agent %s: %v", o.AgentID.Value, err)
		} else {
			cpus, mem = cpus-proxyCPUs, mem-proxyMem
			ops = append(ops, op)
		}
	}
	for _, sl := range s.slots {
		if !sl.idle() {
			continue
		}
		// A node-mode instance has no sidecar: its app and two ports
		// (app, mesh).
		needCPU, needMem, needPorts := sl.app.cpus()+proxyCPUs, sl.app.mem()+proxyMem, 3
		if sl.app.nodeMode() {
			needCPU, needMem, needPorts = sl.app.cpus(), sl.app.mem(), 2
		}
		if cpus < needCPU || mem < needMem || len(ports) < needPorts {
			break
		}
		if s.full(sl.app, o.AgentID.Value) {
			continue
		}
		op, err := s.launch(ctx, sl, o.AgentID, ports[:needPorts])
		if err != nil {
			log.Printf("not launching %s instance %d: %v", sl.app.Service, sl.index, err)
			continue
		}
		cpus, mem, ports = cpus-needCPU, mem-needMem, ports[needPorts:]
		ops = append(ops, op)
	}
	return ops
}

// full reports whether app has its max_per_agent instances on agent.
func (s *sched) full(app *appSpec, agent string) bool {
	if app.MaxPerAgent <= 0 {
		return false
	}
	n := 0
	for _, sl := range s.slots {
		if sl.app == app && !sl.idle() && sl.agent == agent {
			n++
		}
	}
	return n >= app.MaxPerAgent
}

// launch builds one instance's task group: the app, with the DiscoveryInfo
// and labels adapters/mesos reads, and its sidecar, with a fresh join token.
func (s *sched) launch(ctx context.Context, sl *slot, agent mesos.AgentID, ports []uint32) (mesos.Offer_Operation, error) {
	gen := sl.gen + 1
	group := fmt.Sprintf("%s-%d.%d", sl.app.Service, sl.index, gen)
	appTask, proxyTask := group+".app", group+".proxy"
	ns := sl.app.Namespace
	if ns == "" {
		ns = "default"
	}
	appPort, meshPort := ports[0], ports[1]

	var appEnv []mesos.Environment_Variable
	keys := make([]string, 0, len(sl.app.Env))
	for k := range sl.app.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		appEnv = append(appEnv, envVar(k, sl.app.Env[k]))
	}
	appEnv = append(appEnv, envVar("WEFT_SERVICE", sl.app.Service), envVar("WEFT_INSTANCE", appTask))
	labels := &mesos.Labels{Labels: []mesos.Label{label("weft.service", sl.app.Service), label("weft.namespace", ns)}}
	app := mesos.TaskInfo{
		Name: sl.app.Service, TaskID: mesos.TaskID{Value: appTask}, AgentID: agent,
		Resources: []mesos.Resource{cpusRes(sl.app.cpus()), memRes(sl.app.mem()), portsRes(appPort, meshPort)},
		Command:   &mesos.CommandInfo{Value: &sl.app.Command, Environment: &mesos.Environment{Variables: appEnv}},
		Labels:    labels,
		Discovery: &mesos.DiscoveryInfo{Visibility: mesos.FRAMEWORK, Name: &sl.app.Service, Ports: &mesos.Ports{Ports: []mesos.Port{
			port("app", appPort), port("mesh", meshPort)}}},
	}
	if h := sl.app.HealthCheck; h != nil {
		path := h.Path
		app.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: appPort, Path: &path}}
	}
	executor := mesos.ExecutorInfo{
		Type: mesos.ExecutorInfo_DEFAULT, ExecutorID: mesos.ExecutorID{Value: group}, FrameworkID: s.info.ID,
		Resources: []mesos.Resource{cpusRes(0.05), memRes(32)},
	}
	if sl.app.nodeMode() {
		// No sidecar: the app opts into its agent's node proxy, which
		// binds its mesh port (and its upstreams' local ports) on the
		// group's address.
		labels.Labels = append(labels.Labels, label("weft.proxy_mode", "node"))
		sl.gen, sl.group, sl.appTask, sl.proxyTask, sl.running, sl.agent = gen, group, appTask, "", false, agent.Value
		s.byTask[appTask] = sl
		s.live[appTask] = agent.Value
		log.Printf("launching %s (%s, served by the node proxy of agent %s)", group, sl.app.Service, agent.Value)
		return calls.OpLaunchGroup(executor, app), nil
	}
	token, err := s.joinToken(ctx, appTask, sl.app.Service, ns)
	if err != nil {
		return mesos.Offer_Operation{}, err
	}
	adminPort := ports[2]
	proxyCmd := fmt.Sprintf(`exec %s --instance %s --controller %s --trust-bundle %s --admin "$MESOS_CONTAINER_IP:%d" --data-dir .`,
		shellQuote(s.cfg.proxy), shellQuote(appTask), shellQuote(s.cfg.controller), shellQuote(s.cfg.trustBundle), adminPort)
	proxy := mesos.TaskInfo{
		Name: sl.app.Service + "-sidecar", TaskID: mesos.TaskID{Value: proxyTask}, AgentID: agent,
		Resources: []mesos.Resource{cpusRes(proxyCPUs), memRes(proxyMem), portsRes(adminPort)},
		Command: &mesos.CommandInfo{Value: &proxyCmd, Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{
			envVar("WEFT_JOIN_TOKEN", token)}}},
		Labels: &mesos.Labels{Labels: []mesos.Label{label("sidecar-of", appTask)}},
		// The admin port, named, so the group's tasks see PORT_ADMIN;
		// no DiscoveryInfo name: the sidecar is not an instance itself.
		Discovery: &mesos.DiscoveryInfo{Visibility: mesos.FRAMEWORK, Ports: &mesos.Ports{Ports: []mesos.Port{port("admin", adminPort)}}},
	}
	sl.gen, sl.group, sl.appTask, sl.proxyTask, sl.running, sl.agent = gen, group, appTask, proxyTask, false, agent.Value
	s.byTask[appTask], s.byTask[proxyTask] = sl, sl
	s.live[appTask], s.live[proxyTask] = agent.Value, agent.Value
	log.Printf("launching %s (%s + sidecar) on agent %s", group, sl.app.Service, agent.Value)
	return calls.OpLaunchGroup(executor, app, proxy), nil
}

// update acknowledges a status and tracks its instance: a group whose
// task ended is relaunched from the next offer.
func (s *sched) update(ctx context.Context, st mesos.TaskStatus) {
	if len(st.UUID) > 0 && st.AgentID != nil {
		s.call(ctx, calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
	}
	id := st.TaskID.Value
	state := st.GetState()
	if ended(state) {
		delete(s.live, id)
	}
	if agent, ok := s.nodeProxyTask[id]; ok {
		s.nodeProxyUpdate(ctx, agent, id, st)
		return
	}
	sl := s.byTask[id]
	if sl == nil || (id != sl.appTask && id != sl.proxyTask) {
		// An older generation's task. One that was unreachable and has
		// been replaced may come back when its agent does: stop it.
		if state == mesos.TASK_RUNNING {
			log.Printf("task %s is back, but its instance was replaced; killing it", id)
			s.call(ctx, calls.Kill(id, st.GetAgentID().GetValue()))
		}
		return
	}
	switch state {
	case mesos.TASK_RUNNING:
		if id == sl.appTask && !sl.running {
			sl.running = true
			log.Printf("%s is running", sl.group)
		}
	case mesos.TASK_STAGING, mesos.TASK_STARTING, mesos.TASK_KILLING:
	default: // ended, or unreachable: replace the instance
		if s.stopping {
			log.Printf("%s: task %s is %s", sl.group, id, state)
		} else {
			log.Printf("%s: task %s is %s (%s); relaunching the instance", sl.group, id, state, st.GetMessage())
		}
		// The default executor kills the rest of the group; make sure.
		other := sl.proxyTask
		if id == sl.proxyTask {
			other = sl.appTask
		}
		if other != "" && (state == mesos.TASK_UNREACHABLE || state == mesos.TASK_LOST) {
			s.call(ctx, calls.Kill(other, st.GetAgentID().GetValue()))
		}
		delete(s.byTask, sl.appTask)
		delete(s.byTask, sl.proxyTask)
		sl.group, sl.appTask, sl.proxyTask, sl.running = "", "", "", false
		if !s.stopping {
			s.call(ctx, calls.Revive())
		}
	}
}

// ended reports a state after which a task runs no more.
func ended(state mesos.TaskState) bool {
	switch state {
	case mesos.TASK_STAGING, mesos.TASK_STARTING, mesos.TASK_RUNNING, mesos.TASK_KILLING, mesos.TASK_UNREACHABLE:
		return false
	}
	return true
}

// killAll kills every task that may still run (killing one task of a
// group kills the group).
func (s *sched) killAll(ctx context.Context) {
	ids := make([]string, 0, len(s.live))
	for id := range s.live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s.call(ctx, calls.Kill(id, s.live[id]))
	}
}

// allIdle: no task of ours may still run.
func (s *sched) allIdle() bool { return len(s.live) == 0 }

func (s *sched) teardown(ctx context.Context) error {
	log.Printf("tearing down framework %s", s.info.ID.GetValue())
	s.call(ctx, &scheduler.Call{Type: scheduler.Call_TEARDOWN})
	return nil
}

// joinToken asks the controller's admin API for a single-use join token
// for one sidecar.
func (s *sched) joinToken(ctx context.Context, instance, service, namespace string) (string, error) {
	return s.adminToken(ctx, map[string]any{"adapter": "mesos", "instance": instance, "service": service,
		"namespace": namespace, "ttl_seconds": 600})
}

// adminToken posts ask to the admin API's POST /v1/join-tokens and
// returns the token it answers.
func (s *sched) adminToken(ctx context.Context, ask map[string]any) (string, error) {
	body, _ := json.Marshal(ask)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.cfg.adminURL, "/")+"/v1/join-tokens", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("asking for a join token: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.cfg.adminToken)
	resp, err := s.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking the controller for a join token: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("asking the controller for a join token: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		return "", errors.New("asking the controller for a join token: the answer has no token")
	}
	return out.Token, nil
}

func (a *appSpec) cpus() float64 {
	if a.CPUs > 0 {
		return a.CPUs
	}
	return defaultCPUs
}

func (a *appSpec) mem() float64 {
	if a.Mem > 0 {
		return a.Mem
	}
	return defaultMem
}

func scalar(rs []mesos.Resource, name string) float64 {
	var v float64
	for _, r := range rs {
		if r.Name == name && r.Scalar != nil {
			v += r.Scalar.Value
		}
	}
	return v
}

// portsOf lists the offered ports, at most 300 of them.
func portsOf(rs []mesos.Resource) []uint32 {
	var out []uint32
	for _, r := range rs {
		if r.Name != "ports" || r.Ranges == nil {
			continue
		}
		for _, rg := range r.Ranges.Range {
			for p := rg.Begin; p <= rg.End && len(out) < 300; p++ {
				out = append(out, uint32(p))
			}
		}
	}
	return out
}

func cpusRes(v float64) mesos.Resource {
	return mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func memRes(v float64) mesos.Resource {
	return mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func portsRes(ports ...uint32) mesos.Resource {
	var rs []mesos.Value_Range
	for _, p := range ports {
		rs = append(rs, mesos.Value_Range{Begin: uint64(p), End: uint64(p)})
	}
	return mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: rs}}
}

func port(name string, n uint32) mesos.Port {
	proto := "tcp"
	return mesos.Port{Number: n, Name: &name, Protocol: &proto}
}

func label(k, v string) mesos.Label { return mesos.Label{Key: k, Value: &v} }

func envVar(k, v string) mesos.Environment_Variable {
	return mesos.Environment_Variable{Name: k, Value: &v}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
