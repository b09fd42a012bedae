package mesossim

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// defaultRefuse is how long a declined agent is not offered again to the
// framework, unless its filters say otherwise or it revives (the real
// master's default is 5 seconds).
const defaultRefuse = 5 * time.Second

func (m *masterServer) scheduler(w http.ResponseWriter, r *http.Request, c call) {
	var req scheduler.Call
	if err := c.decode(&req); err != nil {
		http.Error(w, "Failed to parse body into Call protobuf: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Type == scheduler.Call_SUBSCRIBE {
		m.subscribeScheduler(w, r, c, &req)
		return
	}
	cl := m.c
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if req.FrameworkID == nil {
		http.Error(w, "Expecting 'framework_id' to be present", http.StatusBadRequest)
		return
	}
	f := cl.frameworks[req.FrameworkID.Value]
	if f == nil || f.stream == nil {
		http.Error(w, "Framework cannot be found or is not subscribed", http.StatusBadRequest)
		return
	}
	if id := r.Header.Get("Mesos-Stream-Id"); id != f.streamID {
		http.Error(w, fmt.Sprintf("The stream ID %q included in this request didn't match the stream ID currently associated with framework ID %s", id, req.FrameworkID.Value), http.StatusBadRequest)
		return
	}
	var err error
	switch req.Type {
	case scheduler.Call_ACCEPT:
		err = cl.acceptLocked(f, req.Accept)
	case scheduler.Call_DECLINE:
		if req.Decline == nil {
			err = fmt.Errorf("expecting 'decline' to be present")
			break
		}
		cl.declineLocked(f, req.Decline.OfferIDs, req.Decline.Filters)
	case scheduler.Call_REVIVE:
		f.suppressed = false
		f.filters = map[string]time.Time{}
	case scheduler.Call_SUPPRESS:
		f.suppressed = true
	case scheduler.Call_KILL:
		if req.Kill == nil {
			err = fmt.Errorf("expecting 'kill' to be present")
			break
		}
		cl.killLocked(f, req.Kill.TaskID.Value)
	case scheduler.Call_ACKNOWLEDGE:
		if req.Acknowledge == nil || len(req.Acknowledge.UUID) == 0 {
			err = fmt.Errorf("expecting 'acknowledge' with a 'uuid'")
			break
		}
		delete(cl.unacked, ackKey(f.info.ID.Value, req.Acknowledge.TaskID.Value, req.Acknowledge.UUID))
	case scheduler.Call_RECONCILE:
		cl.reconcileLocked(f, req.Reconcile)
	case scheduler.Call_TEARDOWN:
		cl.teardownLocked(f)
	default:
		http.Error(w, fmt.Sprintf("Call type %s is not implemented by the simulator", req.Type), http.StatusNotImplemented)
		return
	}
	if err != nil {
		http.Error(w, "Failed to validate scheduler::Call: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (m *masterServer) subscribeScheduler(w http.ResponseWriter, r *http.Request, c call, req *scheduler.Call) {
	if r.Header.Get("Mesos-Stream-Id") != "" {
		http.Error(w, "Subscribe calls should not include the 'Mesos-Stream-Id' header", http.StatusBadRequest)
		return
	}
	if req.Subscribe == nil || req.Subscribe.FrameworkInfo == nil {
		http.Error(w, "Expecting 'subscribe.framework_info' to be present", http.StatusBadRequest)
		return
	}
	cl := m.c
	cl.mu.Lock()
	f := cl.frameworkLocked(*req.Subscribe.FrameworkInfo)
	if f.stream != nil {
		f.stream.close() // a new subscription replaces the old one
	}
	s := newStream()
	f.stream, f.streamID = s, newUUID()
	id := *f.info.ID
	hb := cl.opts.HeartbeatInterval.Seconds()
	s.send(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &id, HeartbeatIntervalSeconds: &hb}})
	// Updates the framework missed while away come again, oldest first.
	var pending []*pendingUpdate
	for _, u := range cl.unacked {
		if u.framework == id.Value {
			pending = append(pending, u)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].seq < pending[j].seq })
	for _, u := range pending {
		s.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: u.status}})
	}
	header := http.Header{"Mesos-Stream-Id": {f.streamID}}
	cl.logf("framework %s (%s) subscribed", id.Value, f.info.Name)
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		if f.stream == s {
			f.stream, f.streamID = nil, ""
			for oid, o := range cl.offers {
				if o.framework == id.Value {
					delete(cl.offers, oid)
				}
			}
		}
		cl.mu.Unlock()
		s.close()
	}()
	serveStream(w, r, c, s, cl.opts.HeartbeatInterval, func() message {
		return &scheduler.Event{Type: scheduler.Event_HEARTBEAT}
	}, header)
}

// offerLoop offers every reachable agent's free resources to every
// subscribed framework that has no outstanding offer for it.
func (c *Cluster) offerLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.OfferInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if time.Now().Before(c.recovering) {
			c.mu.Unlock()
			continue
		}
		now := time.Now()
		for fid, f := range c.frameworks {
			if f.stream == nil || f.suppressed {
				continue
			}
			var offers []mesos.Offer
			for _, a := range c.agents {
				if !a.reachable || now.Before(f.filters[a.id]) || c.hasOfferLocked(fid, a.id) {
					continue
				}
				c.seq++
				o := &offer{id: fmt.Sprintf("%s-O%d", c.id, c.seq), framework: fid, agent: a}
				c.offers[o.id] = o
				offers = append(offers, mesos.Offer{
					ID:          mesos.OfferID{Value: o.id},
					FrameworkID: mesos.FrameworkID{Value: fid},
					AgentID:     mesos.AgentID{Value: a.id},
					Hostname:    a.hostname,
					Resources:   c.freeLocked(a),
				})
			}
			if len(offers) > 0 {
				f.stream.send(&scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: offers}})
			}
		}
		c.mu.Unlock()
	}
}

func (c *Cluster) hasOfferLocked(framework, agent string) bool {
	for _, o := range c.offers {
		if o.framework == framework && o.agent.id == agent {
			return true
		}
	}
	return false
}

// freeLocked is an agent's resources less the scalars its active tasks
// hold. Ports are offered whole: every task group has its own address.
func (c *Cluster) freeLocked(a *agent) []mesos.Resource {
	used := map[string]float64{}
	for _, t := range c.tasks {
		if t.group.agent != a {
			continue
		}
		for _, r := range t.rec.Resources {
			if r.Scalar != nil {
				used[r.Name] += r.Scalar.Value
			}
		}
	}
	var out []mesos.Resource
	for _, r := range a.resources() {
		if r.Scalar != nil {
			left := r.Scalar.Value - used[r.Name]
			if left <= 0 {
				continue
			}
			r.Scalar = &mesos.Value_Scalar{Value: left}
		}
		out = append(out, r)
	}
	return out
}

func (c *Cluster) takeOffersLocked(f *framework, ids []mesos.OfferID) (*agent, error) {
	var a *agent
	for _, id := range ids {
		o := c.offers[id.Value]
		if o == nil || o.framework != f.info.ID.Value {
			return nil, fmt.Errorf("offer %s is no longer valid", id.Value)
		}
		if a != nil && o.agent != a {
			return nil, fmt.Errorf("offers of one ACCEPT must come from one agent")
		}
		a = o.agent
	}
	for _, id := range ids {
		delete(c.offers, id.Value)
	}
	return a, nil
}

func (c *Cluster) declineLocked(f *framework, ids []mesos.OfferID, filters *mesos.Filters) {
	refuse := defaultRefuse
	if filters != nil && filters.RefuseSeconds != nil {
		refuse = time.Duration(*filters.RefuseSeconds * float64(time.Second))
	}
	for _, id := range ids {
		if o := c.offers[id.Value]; o != nil && o.framework == f.info.ID.Value {
			f.filters[o.agent.id] = time.Now().Add(refuse)
			delete(c.offers, id.Value)
		}
	}
}

func (c *Cluster) acceptLocked(f *framework, acc *scheduler.Call_Accept) error {
	if acc == nil || len(acc.OfferIDs) == 0 {
		return fmt.Errorf("expecting 'accept' with at least one offer ID")
	}
	a, err := c.takeOffersLocked(f, acc.OfferIDs)
	if err != nil {
		// A real master answers 202 and reports TASK_DROPPED per task.
		for _, op := range acc.Operations {
			for _, ti := range launchedTasks(op) {
				c.dropLocked(f, ti, err.Error())
			}
		}
		return nil
	}
	for _, op := range acc.Operations {
		switch op.Type {
		case mesos.Offer_Operation_LAUNCH:
			if op.Launch == nil {
				continue
			}
			for _, ti := range op.Launch.TaskInfos {
				exec := mesos.ExecutorID{Value: ti.TaskID.Value}
				c.launchLocked(f, a, exec, []mesos.TaskInfo{ti})
			}
		case mesos.Offer_Operation_LAUNCH_GROUP:
			if op.LaunchGroup == nil {
				continue
			}
			c.launchLocked(f, a, op.LaunchGroup.Executor.ExecutorID, op.LaunchGroup.TaskGroup.Tasks)
		}
	}
	if acc.Filters != nil && acc.Filters.RefuseSeconds != nil {
		f.filters[a.id] = time.Now().Add(time.Duration(*acc.Filters.RefuseSeconds * float64(time.Second)))
	}
	return nil
}

func launchedTasks(op mesos.Offer_Operation) []mesos.TaskInfo {
	switch {
	case op.Launch != nil:
		return op.Launch.TaskInfos
	case op.LaunchGroup != nil:
		return op.LaunchGroup.TaskGroup.Tasks
	}
	return nil
}

func (c *Cluster) dropLocked(f *framework, ti mesos.TaskInfo, why string) {
	st := mesos.TASK_DROPPED
	src := mesos.SOURCE_MASTER
	reason := mesos.REASON_INVALID_OFFERS
	c.sendFrameworkLocked(f.info.ID.Value, &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{
		Status: mesos.TaskStatus{TaskID: ti.TaskID, State: &st, Source: &src, Reason: &reason, Message: &why,
			Timestamp: now(), UUID: newUUIDBytes()}}})
}

func (c *Cluster) killLocked(f *framework, taskID string) {
	t := c.tasks[key(f.info.ID.Value, taskID)]
	if t == nil {
		// Unknown tasks are answered with TASK_LOST, as a real master does.
		st, src, reason := mesos.TASK_LOST, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION
		c.sendFrameworkLocked(f.info.ID.Value, &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{
			Status: mesos.TaskStatus{TaskID: mesos.TaskID{Value: taskID}, State: &st, Source: &src, Reason: &reason, Timestamp: now()}}})
		return
	}
	go t.group.kill(c.opts.KillGrace)
}

func (c *Cluster) reconcileLocked(f *framework, rec *scheduler.Call_Reconcile) {
	want := map[string]bool{}
	if rec != nil {
		for _, t := range rec.Tasks {
			want[t.TaskID.Value] = true
		}
	}
	// Explicit reconciliation of tasks that are not active: their last
	// state if the master remembers them, else TASK_UNKNOWN for a
	// partition-aware framework and TASK_LOST for others.
	for id := range want {
		if c.tasks[key(f.info.ID.Value, id)] != nil {
			continue
		}
		src, reason := mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION
		st := mesos.TaskStatus{TaskID: mesos.TaskID{Value: id}, Source: &src, Reason: &reason, Timestamp: now()}
		state := mesos.TASK_LOST
		if f.partitionAware() {
			state = mesos.TASK_UNKNOWN
		}
		for i := len(c.completed) - 1; i >= 0; i-- {
			if t := c.completed[i]; t.TaskID.Value == id && t.FrameworkID.Value == f.info.ID.Value {
				state = t.GetState()
				st.AgentID = &c.completed[i].AgentID
				break
			}
		}
		st.State = &state
		c.sendFrameworkLocked(f.info.ID.Value, &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}})
	}
	for _, t := range c.tasks {
		if t.rec.FrameworkID.Value != f.info.ID.Value || (len(want) > 0 && !want[t.rec.TaskID.Value]) {
			continue
		}
		st := t.lastStatus()
		src, reason := mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION
		st.Source, st.Reason, st.UUID = &src, &reason, nil
		c.sendFrameworkLocked(f.info.ID.Value, &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}})
	}
}

func (c *Cluster) teardownLocked(f *framework) {
	for _, t := range c.tasks {
		if t.rec.FrameworkID.Value == f.info.ID.Value {
			go t.group.kill(c.opts.KillGrace)
		}
	}
	if f.stream != nil {
		f.stream.close()
	}
	f.stream, f.streamID = nil, ""
}

func now() *float64 {
	t := float64(time.Now().UnixNano()) / 1e9
	return &t
}

func newUUIDBytes() []byte {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return b[:]
}
