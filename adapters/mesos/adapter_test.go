package mesos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/weftmesh/weft/adapters/mesos/recordio"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
	"github.com/weftmesh/weft/test/mesossim"
)

const roleEnv = "WEFT_MESOS_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "plugin" {
		sdk.Serve(fastAdapter())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fastAdapter() *Adapter {
	a := newAdapter(hclog.NewNullLogger())
	a.minBackoff, a.maxBackoff, a.callTimeout = 20*time.Millisecond, 200*time.Millisecond, 5*time.Second
	return a
}

func startSim(t *testing.T, opts mesossim.Options) *mesossim.Cluster {
	t.Helper()
	opts.WorkDir = t.TempDir()
	c, err := mesossim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// meshedTask is a running task that asks for the mesh, as the example
// framework launches them.
func meshedTask(id, service string) mesos.Task {
	running := mesos.TASK_RUNNING
	return mesos.Task{
		Name: id, TaskID: mesos.TaskID{Value: id}, State: &running,
		Labels: labels("weft.service", service),
		Discovery: &mesos.DiscoveryInfo{Name: str(service), Ports: &mesos.Ports{Ports: []mesos.Port{
			{Number: 8080, Name: str("app")}, {Number: 21000, Name: str("mesh")}}}},
	}
}

func conformanceFixture(t *testing.T) sdktest.Fixture {
	c := startSim(t, mesossim.Options{HeartbeatInterval: time.Second})
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, meshedTask("api.1", "api"), meshedTask("api.2", "api"))
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "aurora"}, meshedTask("web.1", "web"))
	return sdktest.Fixture{
		Good:    &sdk.ConfigureRequest{Source: c.URLs()[0]},
		Bad:     &sdk.ConfigureRequest{Source: "ftp://127.0.0.1:5050"},
		WantIDs: []string{"api.1", "api.2", "web.1"},
		Change: func(t *testing.T) []string {
			if err := c.SetTaskState("api.2", mesos.TASK_KILLED); err != nil {
				t.Fatal(err)
			}
			c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "aurora"}, meshedTask("db.1", "db"))
			return []string{"api.1", "db.1", "web.1"}
		},
	}
}

func TestConformanceInMemory(t *testing.T) {
	sdktest.Run(t, sdktest.InMemory(func() sdk.Adapter { return fastAdapter() }), conformanceFixture)
}

// Over a real plugin process: this test binary serves the adapter with
// sdk.Serve, as `weft adapter mesos` does.
func TestConformanceOverPlugin(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Run(t, sdktest.OverPlugin(func() *exec.Cmd {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), roleEnv+"=plugin")
		return cmd
	}), conformanceFixture)
}

// watch configures a with req, which must raise no diagnostic, and runs
// its Watch until the test ends.
func watch(t *testing.T, a *Adapter, req *sdk.ConfigureRequest) *sdktest.Watcher {
	t.Helper()
	if diags := sdktest.Configure(t, a, req); len(diags) > 0 {
		t.Fatalf("Configure: %v", diags)
	}
	return sdktest.Watch(t, a)
}

// waitFor waits (bounded) for a snapshot whose instance IDs are want.
func waitFor(t *testing.T, w *sdktest.Watcher, within time.Duration, want ...string) {
	t.Helper()
	w.WaitFor(t, fmt.Sprintf("instances %v", want), within, func(ev sdk.WatchEvent) bool {
		var ids []string
		for _, in := range ev.Snapshot.Instances {
			ids = append(ids, in.ID)
		}
		return strings.Join(ids, ",") == strings.Join(want, ",")
	})
}

// The adapter is given only the first master; after a failover it
// follows the redirect to the new leader, waits out its recovery, and
// keeps following the cluster.
func TestFollowsLeaderAcrossFailover(t *testing.T) {
	c := startSim(t, mesossim.Options{Masters: 2, HeartbeatInterval: time.Second, RecoveryPeriod: 300 * time.Millisecond})
	// The first leader recovers too; wait it out through the API.
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, meshedTask("api.1", "api"))
	w := watch(t, fastAdapter(), &sdk.ConfigureRequest{Source: c.URLs()[0]})
	waitFor(t, w, 10*time.Second, "api.1")

	if err := c.SetLeader(1); err != nil {
		t.Fatal(err)
	}
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, meshedTask("api.2", "api"))
	waitFor(t, w, 10*time.Second, "api.1", "api.2")

	// And back, with the adapter now knowing master 1 as the leader.
	if err := c.SetLeader(0); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTaskState("api.1", mesos.TASK_FAILED); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, 10*time.Second, "api.2")
}

func TestBasicAuth(t *testing.T) {
	c := startSim(t, mesossim.Options{User: "weft", Password: "right", HeartbeatInterval: time.Second})
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, meshedTask("api.1", "api"))

	t.Run("right password", func(t *testing.T) {
		pw := t.TempDir() + "/pw"
		if err := os.WriteFile(pw, []byte("right\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		w := watch(t, fastAdapter(), &sdk.ConfigureRequest{Source: c.URLs()[0],
			Options: map[string]string{OptionUser: "weft", OptionPasswordFile: pw, OptionEncoding: "protobuf"}})
		waitFor(t, w, 10*time.Second, "api.1")
	})
	t.Run("wrong password", func(t *testing.T) {
		w := watch(t, fastAdapter(), &sdk.ConfigureRequest{Source: c.URLs()[0],
			Options: map[string]string{OptionUser: "weft", OptionPassword: "wrong"}})
		select {
		case <-w.Done():
			if err := w.Err(); err == nil || !strings.Contains(err.Error(), "refused the credentials") || !strings.Contains(err.Error(), "password") {
				t.Fatalf("Watch returned %v, want an error about the credentials", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Watch did not fail within 10s on a wrong password")
		}
	})
}

func TestConfigure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		source  string
		opts    map[string]string
		wantErr string
	}{
		{"one master", "http://127.0.0.1:5050", nil, ""},
		{"bare host:port, several", "127.0.0.1:5050, 127.0.0.2:5050", nil, ""},
		{"empty", " , ", nil, "no master URL"},
		{"bad scheme", "ftp://127.0.0.1:5050", nil, "not http or https"},
		{"unknown option", "127.0.0.1:5050", map[string]string{"pasword": "x"}, "not one of"},
		{"bad encoding", "127.0.0.1:5050", map[string]string{"encoding": "xml"}, "json or protobuf"},
		{"password without user", "127.0.0.1:5050", map[string]string{"password": "x"}, "user option"},
		{"missing password file", "127.0.0.1:5050", map[string]string{"user": "u", "password_file": "/nonexistent/pw"}, "reading /nonexistent/pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := fastAdapter().Configure(context.Background(), &sdk.ConfigureRequest{Source: tc.source, Options: tc.opts})
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, d := range resp.Diagnostics {
				got += d.Summary + ": " + d.Detail + "\n"
			}
			if (tc.wantErr == "") != (got == "") || !strings.Contains(got, tc.wantErr) {
				t.Fatalf("diagnostics %q, want %q", got, tc.wantErr)
			}
		})
	}
}

// scripted is a fake master for failures the simulator does not make: a
// stream that goes silent, or garbage instead of RecordIO. GET_STATE
// answers one meshed task.
type scripted struct {
	subscribes atomic.Int32
	stream     func(w http.ResponseWriter, r *http.Request)
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 4096)
	n, _ := r.Body.Read(buf)
	w.Header().Set("Content-Type", "application/json")
	if strings.Contains(string(buf[:n]), "SUBSCRIBE") {
		s.subscribes.Add(1)
		s.stream(w, r)
		return
	}
	fmt.Fprint(w, `{"type":"GET_STATE","get_state":`+fakeState+`}`)
}

const fakeState = `{"get_tasks":{"tasks":[{"name":"a","task_id":{"value":"api.1"},` +
	`"framework_id":{"value":"fw"},"agent_id":{"value":"s0"},"state":"TASK_RUNNING","resources":[],` +
	`"labels":{"labels":[{"key":"weft.service","value":"api"},{"key":"weft.port.mesh","value":"21000"}]},` +
	`"statuses":[{"task_id":{"value":"api.1"},"state":"TASK_RUNNING","container_status":{"network_infos":[{"ip_addresses":[{"ip_address":"127.0.0.5"}]}]}}]}]}}`

func TestReconnectsOnBrokenStreams(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream func(w http.ResponseWriter, r *http.Request)
	}{
		{"silent after SUBSCRIBED", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			rw := recordio.NewWriter(flusher{w})
			rw.Write([]byte(`{"type":"SUBSCRIBED","subscribed":{"heartbeat_interval_seconds":0.05,"get_state":` + fakeState + `}}`))
			<-r.Context().Done() // the fake master hangs until the adapter gives up on it
		}},
		{"garbage instead of RecordIO", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			fmt.Fprint(w, "<html>502 Bad Gateway</html>")
		}},
		{"oversize record", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			fmt.Fprint(w, "999999999\n{")
		}},
		{"undecodable record", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			recordio.NewWriter(flusher{w}).Write([]byte(`{"type":`))
		}},
		{"wrong Content-Type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(200)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &scripted{stream: tc.stream}
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			w := watch(t, fastAdapter(), &sdk.ConfigureRequest{Source: srv.URL})
			waitFor(t, w, 10*time.Second, "api.1")
			deadline := time.Now().Add(10 * time.Second)
			for fake.subscribes.Load() < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("only %d SUBSCRIBE calls in 10s: the adapter does not reconnect", fake.subscribes.Load())
				}
				select {
				case <-w.Done():
					t.Fatalf("Watch returned %v; it should keep reconnecting", w.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
			// The snapshot did not change, so nothing new was sent.
			select {
			case ev := <-w.Events:
				if len(ev.Snapshot.Instances) != 1 {
					t.Fatalf("a broken stream changed the snapshot: %+v", ev.Snapshot)
				}
			default:
			}
		})
	}
}

type flusher struct{ w http.ResponseWriter }

func (f flusher) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flusher) Flush()                      { f.w.(http.Flusher).Flush() }

// A partitioned agent's tasks turn TASK_UNREACHABLE and leave the
// snapshot; they come back when the partition heals.
func TestUnreachableAgent(t *testing.T) {
	c := startSim(t, mesossim.Options{HeartbeatInterval: time.Second})
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, meshedTask("api.1", "api"), meshedTask("api.2", "api"))
	w := watch(t, fastAdapter(), &sdk.ConfigureRequest{Source: c.URLs()[0]})
	waitFor(t, w, 10*time.Second, "api.1", "api.2")
	agent := c.AgentIDs()[0]
	if err := c.PartitionAgent(agent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, 10*time.Second)
	if err := c.HealAgent(agent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, 10*time.Second, "api.1", "api.2")
}

// outage is a master that can be taken down: while down it answers every
// call 503 and ends the open stream.
type outage struct {
	down atomic.Bool
	mu   sync.Mutex
	cut  chan struct{} // closed to end the open stream
}

func (o *outage) stream(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	cut := o.cut
	o.mu.Unlock()
	w.WriteHeader(200)
	rw := recordio.NewWriter(flusher{w})
	rw.Write([]byte(`{"type":"SUBSCRIBED","subscribed":{"heartbeat_interval_seconds":0.05,"get_state":` + fakeState + `}}`))
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-cut:
			return
		case <-t.C:
			rw.Write([]byte(`{"type":"HEARTBEAT"}`))
		}
	}
}

// TestMasterOutageIsReported: while the adapter cannot read the master,
// its events carry a diagnostic marked ReasonSourceFailing (what `weft
// status` shows as LAST ERROR) with the last snapshot unchanged; once the
// master answers again the diagnostic is gone.
func TestMasterOutageIsReported(t *testing.T) {
	o := &outage{cut: make(chan struct{})}
	fake := &scripted{stream: o.stream}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.down.Load() {
			http.Error(w, "master down", http.StatusServiceUnavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	w := watch(t, fastAdapter(), &sdk.ConfigureRequest{Source: srv.URL})
	waitFor(t, w, 10*time.Second, "api.1")

	failing := func(ev sdk.WatchEvent) bool {
		for _, d := range ev.Diagnostics {
			if d.Reason == sdk.ReasonSourceFailing {
				return true
			}
		}
		return false
	}
	o.down.Store(true)
	o.mu.Lock()
	close(o.cut)
	o.mu.Unlock()
	ev := w.WaitFor(t, "the outage reported", 10*time.Second, failing)
	if len(ev.Snapshot.Instances) != 1 || ev.Snapshot.Instances[0].ID != "api.1" {
		t.Errorf("during the outage the snapshot is %+v, want the last one (api.1)", ev.Snapshot.Instances)
	}
	o.mu.Lock()
	o.cut = make(chan struct{})
	o.mu.Unlock()
	o.down.Store(false)
	w.WaitFor(t, "the outage cleared", 10*time.Second, func(ev sdk.WatchEvent) bool {
		return !failing(ev) && len(ev.Snapshot.Instances) == 1
	})
}
