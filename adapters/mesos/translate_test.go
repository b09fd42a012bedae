package mesos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// readCapture replays a capture from testdata/captures (one JSON object a
// line after the source header: a GET_STATE response, or SUBSCRIBE events)
// into a State, as the adapter would.
func readCapture(t *testing.T, name string) *State {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "captures", name+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	s := NewState(nil)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
			continue
		}
		if bytes.Contains(line, []byte(`"type":"GET_STATE"`)) {
			var r master.Response
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("%s:%d: %v", name, n, err)
			}
			s = NewState(r.GetState)
			continue
		}
		var ev master.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("%s:%d: %v", name, n, err)
		}
		s.Apply(&ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// withLabel adds a label to every task, as a Marathon user would in an
// app definition's labels.
func withLabel(s *State, key, value string) *State {
	for k, t := range s.Tasks {
		var labels []mesos.Label
		if t.Labels != nil {
			labels = append(labels, t.Labels.Labels...)
		}
		v := value
		labels = append(labels, mesos.Label{Key: key, Value: &v})
		t.Labels = &mesos.Labels{Labels: labels}
		s.Tasks[k] = t
	}
	return s
}

func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("translation of %s differs from %s:\n%s", name, path, b)
	}
}

// Real captures from production masters: no task asks for the mesh, so
// none is an instance and none is warned about; with a weft.port.mesh
// label (what a Marathon user adds), every running task is one, with its
// DiscoveryInfo name and ports, its container IP, its framework's name.
func TestTranslateCaptures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tasks int
	}{
		{"dcosnet_operator-api", 12},
		{"dcosnet_pod-tasks", 1},
		{"dcosnet_tcp-and-udp", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := readCapture(t, tc.name)
			if len(s.Tasks) != tc.tasks {
				t.Fatalf("%d tasks after replay, want %d", len(s.Tasks), tc.tasks)
			}
			ins, diags := instancesOf(Translate(s))
			if len(ins) != 0 || len(diags) != 0 {
				t.Fatalf("unlabelled tasks gave %d instances and diagnostics %v", len(ins), diags)
			}
			ins, diags = instancesOf(Translate(withLabel(s, "weft.port.mesh", "21000")))
			for _, d := range diags {
				t.Logf("warning: %s: %s", d.Summary, d.Detail)
			}
			for _, in := range ins {
				if err := in.Validate(); err != nil {
					t.Errorf("invalid instance: %v", err)
				}
			}
			golden(t, tc.name, struct {
				Instances   []model.Instance
				Diagnostics []sdk.Diagnostic
			}{ins, diags})
		})
	}
}

func str(s string) *string { return &s }

func runningTask(id string, mut func(*mesos.Task)) mesos.Task {
	running := mesos.TASK_RUNNING
	t := mesos.Task{
		Name: id, TaskID: mesos.TaskID{Value: id}, FrameworkID: mesos.FrameworkID{Value: "fw"},
		AgentID: mesos.AgentID{Value: "agent-1"}, State: &running,
		Discovery: &mesos.DiscoveryInfo{Name: str("api"), Ports: &mesos.Ports{Ports: []mesos.Port{
			{Number: 8080, Name: str("app")}, {Number: 21000, Name: str("mesh")}}}},
		Statuses: []mesos.TaskStatus{{TaskID: mesos.TaskID{Value: id}, State: &running,
			ContainerStatus: &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{{
				IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: str("127.0.0.7")}}}}}}},
	}
	if mut != nil {
		mut(&t)
	}
	return t
}

func labels(kv ...string) *mesos.Labels {
	l := &mesos.Labels{}
	for i := 0; i < len(kv); i += 2 {
		l.Labels = append(l.Labels, mesos.Label{Key: kv[i], Value: str(kv[i+1])})
	}
	return l
}

func TestTranslateTask(t *testing.T) {
	base := model.Instance{ID: "t1", Service: "api", Address: "127.0.0.7",
		Ports: map[string]int{"app": 8080, "mesh": 21000}, Meta: map[string]string{},
		Labels:   map[string]string{LabelFrameworkID: "fw", LabelFrameworkName: "my-framework", LabelTaskID: "t1", LabelAgentID: "agent-1"},
		Workload: map[string]string{model.WorkloadScheduler: "mesos", "framework": "fw", "framework_name": "my-framework", "role": "shop", "principal": "shop-fw"}}
	base.Isolation = model.IsolationNone // the task group shares the agent's network
	base.Node = "agent-1"                // the agent that runs the task
	with := func(f func(*model.Instance)) []model.Instance {
		in := base
		in.Ports = map[string]int{"app": 8080, "mesh": 21000}
		in.Meta = map[string]string{}
		in.Labels = map[string]string{}
		for k, v := range base.Labels {
			in.Labels[k] = v
		}
		if f != nil {
			f(&in)
		}
		return []model.Instance{in}
	}
	for _, tc := range []struct {
		name     string
		task     func(*mesos.Task)
		want     []model.Instance
		wantWarn string
	}{
		{name: "discovery info", want: with(nil)},
		{name: "label names the service over discovery", task: func(t *mesos.Task) {
			t.Labels = labels("weft.service", "billing", "weft.namespace", "prod", "version", "v2")
		}, want: with(func(in *model.Instance) {
			in.Service, in.Namespace, in.Meta = "billing", "prod", map[string]string{"version": "v2"}
		})},
		{name: "port labels add and override", task: func(t *mesos.Task) {
			t.Labels = labels("weft.port.mesh", "22000", "weft.port.upstream:db", "15432")
		}, want: with(func(in *model.Instance) {
			in.Ports = map[string]int{"app": 8080, "mesh": 22000, "upstream:db": 15432}
		})},
		{name: "bad port label", task: func(t *mesos.Task) { t.Labels = labels("weft.port.mesh", "http") }, wantWarn: "not a port number"},
		{name: "no service name, not opted in", task: func(t *mesos.Task) { t.Discovery.Name = nil }},
		{name: "opted in without service name", task: func(t *mesos.Task) {
			t.Discovery.Name = nil
			t.Labels = labels("weft.namespace", "prod")
		}, wantWarn: "no service name"},
		{name: "no mesh port, not opted in", task: func(t *mesos.Task) { t.Discovery.Ports.Ports = t.Discovery.Ports.Ports[:1] }},
		{name: "no mesh port, opted in", task: func(t *mesos.Task) {
			t.Discovery.Ports.Ports = t.Discovery.Ports.Ports[:1]
			t.Labels = labels("weft.service", "api")
		}, wantWarn: "no port named \"mesh\""},
		{name: "starting tasks wait", task: func(t *mesos.Task) { s := mesos.TASK_STARTING; t.State = &s }},
		{name: "unreachable tasks leave", task: func(t *mesos.Task) { s := mesos.TASK_UNREACHABLE; t.State = &s }},
		{name: "agent hostname when no container IP", task: func(t *mesos.Task) { t.Statuses[0].ContainerStatus = nil },
			want: with(func(in *model.Instance) { in.Address = "127.0.0.1" })},
		{name: "agent hostname not an IP", task: func(t *mesos.Task) {
			t.Statuses[0].ContainerStatus = nil
			t.AgentID.Value = "agent-named"
		}, wantWarn: "is not an IP address"},
		{name: "unknown agent", task: func(t *mesos.Task) {
			t.Statuses[0].ContainerStatus = nil
			t.AgentID.Value = "agent-gone"
		}, wantWarn: "is unknown"},
		{name: "health from the latest status", task: func(t *mesos.Task) {
			healthy, sick := true, false
			t.Statuses[0].Healthy, t.Statuses[0].Timestamp = &healthy, new(float64)
			later := *t.Statuses[0].Timestamp + 5
			st := t.Statuses[0]
			st.Healthy, st.Timestamp = &sick, &later
			t.Statuses = append(t.Statuses, st)
		}, want: with(func(in *model.Instance) { in.Health = model.HealthCritical })},
		{name: "a declared health check without a result yet gets no traffic", task: func(t *mesos.Task) {
			t.HealthCheck = &mesos.HealthCheck{}
		}, want: with(func(in *model.Instance) { in.Health = model.HealthCritical })},
		{name: "a declared health check that passed", task: func(t *mesos.Task) {
			healthy := true
			t.HealthCheck = &mesos.HealthCheck{}
			t.Statuses[0].Healthy = &healthy
		}, want: with(func(in *model.Instance) { in.Health = model.HealthPassing })},
		{name: "a later status without a health result keeps the last result", task: func(t *mesos.Task) {
			healthy := true
			t.HealthCheck = &mesos.HealthCheck{}
			t.Statuses[0].Healthy, t.Statuses[0].Timestamp = &healthy, new(float64)
			later := *t.Statuses[0].Timestamp + 5
			st := t.Statuses[0]
			st.Healthy, st.Timestamp = nil, &later
			t.Statuses = append(t.Statuses, st)
		}, want: with(func(in *model.Instance) { in.Health = model.HealthPassing })},
		{name: "a later healthy result after an unhealthy one", task: func(t *mesos.Task) {
			sick, healthy := false, true
			t.HealthCheck = &mesos.HealthCheck{}
			t.Statuses[0].Healthy, t.Statuses[0].Timestamp = &sick, new(float64)
			later := *t.Statuses[0].Timestamp + 5
			st := t.Statuses[0]
			st.Healthy, st.Timestamp = &healthy, &later
			t.Statuses = append([]mesos.TaskStatus{st}, t.Statuses...) // listed out of order
		}, want: with(func(in *model.Instance) { in.Health = model.HealthPassing })},
		{name: "no health check: health unknown", task: nil, want: with(nil)},
		{name: "host-scoped ports are reached at the agent", task: func(t *mesos.Task) {
			t.Discovery.Ports.Ports[1].Labels = labels("network-scope", "host")
		}, want: with(func(in *model.Instance) { in.Address = "127.0.0.1" })},
		{name: "container-scoped ports at the container IP", task: func(t *mesos.Task) {
			t.Discovery.Ports.Ports[1].Labels = labels("network-scope", "container", "network-name", "dcos")
		}, want: with(nil)},
		{name: "mesh port from a label: the first scoped port decides", task: func(t *mesos.Task) {
			t.Discovery.Ports.Ports = t.Discovery.Ports.Ports[:1]
			t.Discovery.Ports.Ports[0].Labels = labels("network-scope", "host")
			t.Labels = labels("weft.port.mesh", "21000")
		}, want: with(func(in *model.Instance) { in.Address = "127.0.0.1" })},
		{name: "host-scoped on an agent without an IP hostname", task: func(t *mesos.Task) {
			t.Discovery.Ports.Ports[1].Labels = labels("network-scope", "host")
			t.AgentID.Value = "agent-named"
		}, wantWarn: "network-scope=host"},
		{name: "executor label", task: func(t *mesos.Task) { t.ExecutorID = &mesos.ExecutorID{Value: "group-1"} },
			want: with(func(in *model.Instance) { in.Labels[LabelExecutorID] = "group-1" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState(nil)
			s.Agents["agent-1"] = mesos.AgentInfo{Hostname: "127.0.0.1", ID: &mesos.AgentID{Value: "agent-1"}}
			s.Agents["agent-named"] = mesos.AgentInfo{Hostname: "node7.example", ID: &mesos.AgentID{Value: "agent-named"}}
			s.Frameworks["fw"] = mesos.FrameworkInfo{Name: "my-framework", ID: &mesos.FrameworkID{Value: "fw"}, Roles: []string{"shop"}, Principal: str("shop-fw")}
			s.putTask(runningTask("t1", tc.task))
			got, diags := instancesOf(Translate(s))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("instances:\n got %+v\nwant %+v", got, tc.want)
			}
			var warned string
			for _, d := range diags {
				warned += d.Detail + "\n"
			}
			if (tc.wantWarn == "") != (warned == "") || !strings.Contains(warned, tc.wantWarn) {
				t.Errorf("warnings %q, want one containing %q", warned, tc.wantWarn)
			}
		})
	}
}

func TestTranslateDuplicateTaskIDs(t *testing.T) {
	s := NewState(nil)
	s.putTask(runningTask("same", nil))
	s.putTask(runningTask("same", func(t *mesos.Task) { t.FrameworkID.Value = "other" }))
	ins, diags := instancesOf(Translate(s))
	if len(ins) != 1 || len(diags) != 1 || !strings.Contains(diags[0].Detail, "unique") {
		t.Fatalf("got %d instances, diagnostics %v; want 1 and a warning", len(ins), diags)
	}
}

// instancesOf takes the instances out of Translate's snapshot.
func instancesOf(s model.Snapshot, diags []sdk.Diagnostic) ([]model.Instance, []sdk.Diagnostic) {
	return s.Instances, diags
}

// A task that asks for the mesh without a mesh port is no instance, and
// its warning names it and the reason, for the controller's status.
func TestTranslateNamesDroppedTasks(t *testing.T) {
	s := withLabel(readCapture(t, "dcosnet_operator-api"), "weft.service", "api")
	ins, diags := instancesOf(Translate(s))
	if len(ins) != 0 {
		t.Fatalf("%d instances from tasks without a mesh port, want 0", len(ins))
	}
	if len(diags) == 0 {
		t.Fatal("no diagnostic for tasks that ask for the mesh without a mesh port")
	}
	for _, d := range diags {
		if d.Reason != sdk.ReasonNoMeshPort || d.Instance == "" || !strings.Contains(d.Summary, d.Instance) {
			t.Errorf("diagnostic %+v: want reason %s and the task's ID as Instance", d, sdk.ReasonNoMeshPort)
		}
	}
}
