package mesossim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// schedulerSession is mesos-go's own scheduler client, subscribed.
type schedulerSession struct {
	t       *testing.T
	caller  calls.Caller
	id      string
	events  chan *scheduler.Event
	backlog []*scheduler.Event // skipped by next, kept for a later one
}

func subscribeScheduler(t *testing.T, url string, info *mesos.FrameworkInfo) *schedulerSession {
	t.Helper()
	cli := httpcli.New(httpcli.Endpoint(url+"/api/v1/scheduler"), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]))
	caller := httpsched.NewCaller(cli)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := caller.Call(ctx, calls.Subscribe(info))
	if err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	t.Cleanup(func() { resp.Close() })
	s := &schedulerSession{t: t, caller: caller, events: make(chan *scheduler.Event, 100)}
	go func() {
		defer close(s.events)
		for {
			var ev scheduler.Event
			if err := resp.Decode(&ev); err != nil {
				return
			}
			s.events <- &ev
		}
	}()
	ev := s.next(scheduler.Event_SUBSCRIBED)
	s.id = ev.Subscribed.FrameworkID.Value
	return s
}

// next returns the next event of type typ, skipping others, bounded.
func (s *schedulerSession) next(typ scheduler.Event_Type) *scheduler.Event {
	s.t.Helper()
	for i, ev := range s.backlog {
		if ev.Type == typ {
			s.backlog = append(s.backlog[:i], s.backlog[i+1:]...)
			return ev
		}
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("stream ended waiting for %s", typ)
			}
			if ev.Type == typ {
				return ev
			}
			if ev.Type != scheduler.Event_HEARTBEAT {
				s.backlog = append(s.backlog, ev)
			}
		case <-deadline:
			s.t.Fatalf("no %s event within 10s", typ)
		}
	}
}

// updates collects status updates until want holds, acknowledging each.
func (s *schedulerSession) updates(want func(map[string]mesos.TaskStatus) bool) map[string]mesos.TaskStatus {
	s.t.Helper()
	got := map[string]mesos.TaskStatus{}
	for !want(got) {
		st := s.next(scheduler.Event_UPDATE).Update.Status
		got[st.TaskID.Value] = st
		if len(st.UUID) > 0 {
			s.call(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
		}
	}
	return got
}

func (s *schedulerSession) call(c *scheduler.Call) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := calls.CallNoData(ctx, s.caller, c.With(calls.Framework(s.id))); err != nil {
		s.t.Fatalf("%s: %v", c.Type, err)
	}
}

func shellTask(id, agent, script string, ports ...uint32) mesos.TaskInfo {
	name := "p-" + id
	var rs []mesos.Value_Range
	var dports []mesos.Port
	for _, p := range ports {
		rs = append(rs, mesos.Value_Range{Begin: uint64(p), End: uint64(p)})
		dports = append(dports, mesos.Port{Number: p, Name: &name})
	}
	return mesos.TaskInfo{
		Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: mesos.AgentID{Value: agent},
		Resources: []mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32),
			{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: rs}}},
		Command:   &mesos.CommandInfo{Value: &script},
		Discovery: &mesos.DiscoveryInfo{Ports: &mesos.Ports{Ports: dports}},
	}
}

func state(st mesos.TaskStatus) mesos.TaskState { return st.GetState() }

func ip(st mesos.TaskStatus) string {
	cs := st.GetContainerStatus()
	if cs == nil || len(cs.NetworkInfos) == 0 || len(cs.NetworkInfos[0].IPAddresses) == 0 {
		return ""
	}
	return cs.NetworkInfos[0].IPAddresses[0].GetIPAddress()
}

// A framework on mesos-go's scheduler client launches a task group: both
// tasks run as processes sharing one loopback address and see the group's
// ports; a crash fails one and kills the other; KILL kills a group.
func TestSchedulerLaunchGroup(t *testing.T) {
	c := start(t, Options{HeartbeatInterval: time.Second, OfferInterval: 20 * time.Millisecond, KillGrace: 2 * time.Second})
	s := subscribeScheduler(t, c.URLs()[0], &mesos.FrameworkInfo{User: "root", Name: "test"})
	offer := s.next(scheduler.Event_OFFERS).Offers.Offers[0]
	if offer.Hostname != "127.0.0.1" {
		t.Fatalf("offer from host %q", offer.Hostname)
	}
	dir := t.TempDir()
	script := func(name string) string {
		return `env > ` + filepath.Join(dir, name) + `.env; exec sleep 60`
	}
	a := shellTask("g1.a", offer.AgentID.Value, script("a"), 31001)
	b := shellTask("g1.b", offer.AgentID.Value, script("b"), 31002)
	exec := mesos.ExecutorInfo{Type: mesos.ExecutorInfo_DEFAULT, ExecutorID: mesos.ExecutorID{Value: "g1"}}
	s.call(calls.Accept(calls.OfferOperations{calls.OpLaunchGroup(exec, a, b)}.WithOffers(offer.ID)))

	got := s.updates(func(m map[string]mesos.TaskStatus) bool {
		return state(m["g1.a"]) == mesos.TASK_RUNNING && state(m["g1.b"]) == mesos.TASK_RUNNING
	})
	addr := ip(got["g1.a"])
	if addr == "" || addr != ip(got["g1.b"]) || !strings.HasPrefix(addr, "127.") || addr == "127.0.0.1" {
		t.Fatalf("group addresses %q and %q: want one shared loopback address of the group's own", addr, ip(got["g1.b"]))
	}
	for _, name := range []string{"a", "b"} {
		var env []byte
		deadline := time.Now().Add(10 * time.Second)
		for len(env) == 0 && time.Now().Before(deadline) {
			env, _ = os.ReadFile(filepath.Join(dir, name+".env"))
			if len(env) == 0 {
				time.Sleep(10 * time.Millisecond) // polling a file the task writes, bounded
			}
		}
		for _, want := range []string{"MESOS_CONTAINER_IP=" + addr, "PORT_P_G1_A=31001", "PORT_P_G1_B=31002", "MESOS_TASK_ID=g1." + name} {
			if !strings.Contains(string(env), want+"\n") {
				t.Errorf("task %s's environment lacks %s:\n%s", name, want, env)
			}
		}
	}

	// A crash of one task fails it and kills its group.
	if err := c.CrashTask("g1.a"); err != nil {
		t.Fatal(err)
	}
	got = s.updates(func(m map[string]mesos.TaskStatus) bool {
		return state(m["g1.a"]) == mesos.TASK_FAILED && state(m["g1.b"]) == mesos.TASK_KILLED
	})

	// A second group, killed through the API.
	offer = s.next(scheduler.Event_OFFERS).Offers.Offers[0]
	exec.ExecutorID.Value = "g2"
	s.call(calls.Accept(calls.OfferOperations{calls.OpLaunchGroup(exec,
		shellTask("g2.a", offer.AgentID.Value, "exec sleep 60", 31001), shellTask("g2.b", offer.AgentID.Value, "exec sleep 60", 31002))}.WithOffers(offer.ID)))
	s.updates(func(m map[string]mesos.TaskStatus) bool {
		return state(m["g2.a"]) == mesos.TASK_RUNNING && state(m["g2.b"]) == mesos.TASK_RUNNING
	})
	s.call(calls.Kill("g2.b", offer.AgentID.Value))
	s.updates(func(m map[string]mesos.TaskStatus) bool {
		return state(m["g2.a"]) == mesos.TASK_KILLED && state(m["g2.b"]) == mesos.TASK_KILLED
	})
	if n := len(c.Tasks()); n != 0 {
		t.Fatalf("%d tasks still active: %+v", n, c.Tasks())
	}
}

func TestSchedulerCallsNeedTheStreamID(t *testing.T) {
	c := start(t, Options{HeartbeatInterval: 50 * time.Millisecond})
	s := subscribeScheduler(t, c.URLs()[0], &mesos.FrameworkInfo{User: "root", Name: "test"})
	s.next(scheduler.Event_HEARTBEAT)
	body := `{"type":"REVIVE","framework_id":{"value":"` + s.id + `"}}`
	resp := post(t, c.URLs()[0]+"/api/v1/scheduler", map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, body)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("a call without Mesos-Stream-Id: status %d, want 400", resp.StatusCode)
	}
	resp = post(t, c.URLs()[0]+"/api/v1/scheduler", map[string]string{"Content-Type": "application/json", "Accept": "application/json",
		"Mesos-Stream-Id": "not-the-stream"}, body)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("a call with a wrong Mesos-Stream-Id: status %d, want 400", resp.StatusCode)
	}
}

// After a failover the framework resubscribes, through the old leader's
// redirect, with its framework ID, and finds its tasks still running.
func TestSchedulerFailover(t *testing.T) {
	c := start(t, Options{Masters: 2, HeartbeatInterval: time.Second, OfferInterval: 20 * time.Millisecond})
	info := &mesos.FrameworkInfo{User: "root", Name: "test"}
	s := subscribeScheduler(t, c.URLs()[0], info)
	offer := s.next(scheduler.Event_OFFERS).Offers.Offers[0]
	s.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(shellTask("t1", offer.AgentID.Value, "exec sleep 60", 31001))}.WithOffers(offer.ID)))
	s.updates(func(m map[string]mesos.TaskStatus) bool { return state(m["t1"]) == mesos.TASK_RUNNING })

	if err := c.SetLeader(1); err != nil {
		t.Fatal(err)
	}
	for range s.events { // the old stream is cut
	}
	info.ID = &mesos.FrameworkID{Value: s.id}
	s2 := subscribeScheduler(t, c.URLs()[0], info) // the old leader redirects SUBSCRIBE
	if s2.id != s.id {
		t.Fatalf("resubscribed as %s, want %s", s2.id, s.id)
	}
	// mesos-go v0.0.11 follows the redirect for SUBSCRIBE only and sends
	// later calls to its configured endpoint, which redirects them: a
	// framework must point its client at the leader (the example framework
	// asks /master/redirect). So does this test.
	s3 := subscribeScheduler(t, c.URLs()[1], info)
	s3.call(calls.Reconcile())
	got := s3.updates(func(m map[string]mesos.TaskStatus) bool { return state(m["t1"]) == mesos.TASK_RUNNING })
	if st := got["t1"]; st.GetReason() != mesos.REASON_RECONCILIATION {
		t.Fatalf("reconciled status has reason %s", st.GetReason())
	}
}
