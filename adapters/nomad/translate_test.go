package nomad

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Allocations in testdata/state.json (recorded from Nomad 1.6.1 by
// TestRecord): two of job web, one of job shop (services shop, cart,
// broken, and the task service shop-admin), one of job plain (no mesh
// port).
const (
	web0 = "849665e7-3130-f219-5844-ba4d0d2bad81"
	web1 = "ef501d6a-4a13-f012-8f8c-69962422caf5"
	shop = "5b7a4332-5c60-36d3-7a76-128b7622d8dd"
)

func loadState(t *testing.T) State {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func allocOf(st State, id string) *api.AllocationListStub {
	for _, a := range st.Allocs {
		if a.ID == id {
			return a
		}
	}
	panic("no allocation " + id)
}

func regOf(st State, service string) *api.ServiceRegistration {
	for _, r := range st.Services {
		if r.ServiceName == service {
			return r
		}
	}
	panic("no registration of " + service)
}

func TestTranslate(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name      string
		mutate    func(st *State)
		wantIDs   []string
		wantDiags []string // a substring of each diagnostic's summary, in order
		check     func(t *testing.T, ins map[string]model.Instance)
	}{{
		name:      "recorded",
		wantIDs:   []string{shop + "/cart", web0 + "/web", web1 + "/web"},
		wantDiags: []string{"skipping service broken", "skipping service shop-admin", "skipping service shop "},
		check: func(t *testing.T, ins map[string]model.Instance) {
			w := ins[web0+"/web"]
			want := model.Instance{
				ID: web0 + "/web", Service: "web", Namespace: "default", Address: "127.0.0.1",
				Ports:  map[string]int{"app": 28090, "mesh": 26548, "upstream:db": 26650},
				Meta:   map[string]string{"version": "v1", FactCanary: "false", FactJobVersion: "0"},
				Tags:   []string{"plain"},
				Health: model.HealthPassing,
				Labels: map[string]string{
					FactNamespace: "default", FactJob: "web", FactGroup: "g", FactTask: "",
					FactAllocID: web0, FactAllocName: "web.g[0]", FactNodeID: w.Labels[FactNodeID], FactNode: w.Labels[FactNode],
					FactDatacenter: "dc1", FactJobVersion: "0", FactCanary: "false",
				},
				Workload: map[string]string{model.WorkloadScheduler: "nomad", "namespace": "default", "job": "web", "group": "g"},
				Node:     w.Labels[FactNodeID], // the allocation's NodeID
			}
			want.Isolation = model.IsolationNone // host networking
			if w.Labels[FactNodeID] == "" || w.Labels[FactNode] == "" {
				t.Errorf("node facts missing: %v", w.Labels)
			}
			if !reflect.DeepEqual(w, want) {
				t.Errorf("web instance:\n got %+v\nwant %+v", w, want)
			}
			if c := ins[shop+"/cart"]; c.Ports["mesh"] != 24177 || c.Ports["app"] != 25157 || c.Ports["upstream:my-api"] != 25836 {
				t.Errorf("cart's ports %v: want mesh from its weft_mesh_port tag, app 25157, upstream:my-api from upstream_my_api", c.Ports)
			}
		},
	}, {
		name: "a service tagged weft_mesh=false is left out, freeing the mesh port",
		mutate: func(st *State) {
			r := regOf(*st, "shop-admin")
			r.Tags = append(r.Tags, "weft_mesh=false")
		},
		wantIDs:   []string{shop + "/cart", shop + "/shop", web0 + "/web", web1 + "/web"},
		wantDiags: []string{"skipping service broken"},
		check: func(t *testing.T, ins map[string]model.Instance) {
			if l := ins[shop+"/shop"].Labels; l[FactGroup] != "front" || l[FactTask] != "" {
				t.Errorf("shop's facts %v: want group front, no task (a group service)", l)
			}
		},
	}, {
		name: "a task service names its task",
		mutate: func(st *State) {
			r := regOf(*st, "shop")
			r.Tags = append(r.Tags, "weft_mesh=false")
		},
		wantIDs:   []string{shop + "/cart", shop + "/shop-admin", web0 + "/web", web1 + "/web"},
		wantDiags: []string{"skipping service broken"},
		check: func(t *testing.T, ins map[string]model.Instance) {
			if got := ins[shop+"/shop-admin"].Labels[FactTask]; got != "app" {
				t.Errorf("shop-admin's task fact %q, want app", got)
			}
		},
	}, {
		name:      "a terminal allocation disappears",
		mutate:    func(st *State) { allocOf(*st, web1).ClientStatus = "complete" },
		wantIDs:   []string{shop + "/cart", web0 + "/web"},
		wantDiags: []string{"broken", "shop-admin", "shop "},
	}, {
		name:      "an allocation being stopped disappears",
		mutate:    func(st *State) { allocOf(*st, web1).DesiredStatus = "stop" },
		wantIDs:   []string{shop + "/cart", web0 + "/web"},
		wantDiags: []string{"broken", "shop-admin", "shop "},
	}, {
		name: "a registration whose allocation is not listed yet waits",
		mutate: func(st *State) {
			st.Allocs = slices.DeleteFunc(st.Allocs, func(a *api.AllocationListStub) bool { return a.ID == web1 })
		},
		wantIDs:   []string{shop + "/cart", web0 + "/web"},
		wantDiags: []string{"broken", "shop-admin", "shop "},
	}, {
		name: "canary and deployment health",
		mutate: func(st *State) {
			allocOf(*st, web0).DeploymentStatus = &api.AllocDeploymentStatus{Canary: true, Healthy: &yes}
			allocOf(*st, web1).DeploymentStatus = &api.AllocDeploymentStatus{Healthy: &no}
			allocOf(*st, web1).JobVersion = 3
		},
		wantIDs:   []string{shop + "/cart", web0 + "/web", web1 + "/web"},
		wantDiags: []string{"broken", "shop-admin", "shop "},
		check: func(t *testing.T, ins map[string]model.Instance) {
			if l, m := ins[web0+"/web"].Labels, ins[web0+"/web"].Meta; l[FactCanary] != "true" || m[FactCanary] != "true" {
				t.Errorf("canary fact %q, meta %q, want true in both", l[FactCanary], m[FactCanary])
			}
			if h := ins[web0+"/web"].Health; h != model.HealthPassing {
				t.Errorf("healthy canary's health %q, want passing", h)
			}
			if h := ins[web1+"/web"].Health; h != model.HealthCritical {
				t.Errorf("unhealthy allocation's health %q, want critical", h)
			}
			if v := ins[web1+"/web"].Labels[FactJobVersion]; v != "3" {
				t.Errorf("job version fact %q, want 3", v)
			}
		},
	}, {
		name: "an allocation a running deployment has not yet found healthy is not routed to",
		mutate: func(st *State) {
			allocOf(*st, web0).JobVersion = 1
			allocOf(*st, web0).CreateIndex = 100
			allocOf(*st, web1).JobVersion = 1 // updated in place: created before
			allocOf(*st, web1).CreateIndex = 10
			st.Deployments = []*api.Deployment{
				{Namespace: "default", JobID: "web", JobVersion: 1, Status: "running", CreateIndex: 50},
				{Namespace: "default", JobID: "shop", JobVersion: 3, Status: "running"}, // another version
			}
		},
		wantIDs:   []string{shop + "/cart", web0 + "/web", web1 + "/web"},
		wantDiags: []string{"broken", "shop-admin", "shop "},
		check: func(t *testing.T, ins map[string]model.Instance) {
			if h := ins[web0+"/web"].Health; h != model.HealthCritical {
				t.Errorf("health %q before the deployment's verdict, want critical", h)
			}
			if h := ins[web1+"/web"].Health; h != model.HealthPassing {
				t.Errorf("health %q of an allocation the deployment updated in place, want passing", h)
			}
			if h := ins[shop+"/cart"].Health; h != model.HealthPassing {
				t.Errorf("health %q of an allocation another version is deploying over, want passing", h)
			}
		},
	}, {
		name:      "a pending allocation is in, so its sidecar can join, but critical, so no caller is sent there yet",
		mutate:    func(st *State) { allocOf(*st, web0).ClientStatus = "pending" },
		wantIDs:   []string{shop + "/cart", web0 + "/web", web1 + "/web"},
		wantDiags: []string{"broken", "shop-admin", "shop "},
		check: func(t *testing.T, ins map[string]model.Instance) {
			if h := ins[web0+"/web"].Health; h != model.HealthCritical {
				t.Errorf("pending allocation's health %q, want critical", h)
			}
		},
	}, {
		name:      "a service name that is no DNS label is skipped and reported, the rest stands",
		mutate:    func(st *State) { regOf(*st, "cart").ServiceName = "Cart_Service" },
		wantIDs:   []string{web0 + "/web", web1 + "/web"},
		wantDiags: []string{"broken", "Cart_Service", "shop-admin", "shop "},
	}, {
		name:      "nothing registered",
		mutate:    func(st *State) { st.Services = nil },
		wantIDs:   nil,
		wantDiags: nil,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := loadState(t)
			if tt.mutate != nil {
				tt.mutate(&st)
			}
			ins, diags := instancesOf(Translate(st))
			var ids []string
			byID := map[string]model.Instance{}
			for _, in := range ins {
				ids = append(ids, in.ID)
				byID[in.ID] = in
				if err := in.Validate(); err != nil {
					t.Errorf("invalid instance in the snapshot: %v", err)
				}
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("instances %v, want %v", ids, tt.wantIDs)
			}
			if len(diags) != len(tt.wantDiags) {
				t.Errorf("%d diagnostics, want %d: %+v", len(diags), len(tt.wantDiags), diags)
			} else {
				for i, d := range diags {
					if !strings.Contains(d.Summary, tt.wantDiags[i]) || d.Detail == "" {
						t.Errorf("diagnostic %d: %q (%s), want one containing %q with a detail", i, d.Summary, d.Detail, tt.wantDiags[i])
					}
				}
			}
			if tt.check != nil {
				tt.check(t, byID)
			}
		})
	}
}

func TestTranslateIsDeterministic(t *testing.T) {
	st := loadState(t)
	a, _ := instancesOf(Translate(st))
	slices.Reverse(st.Services)
	slices.Reverse(st.Allocs)
	b, _ := instancesOf(Translate(st))
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the order of Nomad's lists changes the snapshot")
	}
}

func TestParseClaims(t *testing.T) {
	// Header and payload of a real Nomad 1.6.1 workload identity, with a
	// made-up signature (ParseClaims does not check it).
	good := "eyJhbGciOiJFZERTQSIsImtpZCI6IngiLCJ0eXAiOiJKV1QifQ." +
		b64(`{"nomad_allocation_id":"a1","nomad_job_id":"web","nomad_namespace":"default","nomad_task":"weft-proxy","iat":1}`) + ".c2ln"
	tests := []struct {
		name, token, wantErr string
		want                 Claims
	}{
		{"workload identity", good, "", Claims{Namespace: "default", JobID: "web", AllocationID: "a1", Task: "weft-proxy"}},
		{"an ACL token", "0b1c9f5e-5d7e-4f4e-9c43-7f0d2b8f1e11", "not a JWT", Claims{}},
		{"not base64", "a.%%%.c", "decoding", Claims{}},
		{"another issuer's JWT", "e30." + b64(`{"sub":"x"}`) + ".c2ln", "not a Nomad workload identity", Claims{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseClaims(tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c != tt.want {
				t.Errorf("ParseClaims = %+v, %v; want %+v", c, err, tt.want)
			}
		})
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// A running allocation is passing only while no task of it is down: a
// killed app or sidecar task waits out its restart delay as "pending" in
// an allocation Nomad still calls running.
func TestHealthReadsTaskStates(t *testing.T) {
	ran := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		tasks map[string]*api.TaskState
		want  model.Health
	}{
		{"no task states listed", nil, model.HealthPassing},
		{"every task running", map[string]*api.TaskState{"app": {State: "running", StartedAt: ran}, "weft-proxy": {State: "running", StartedAt: ran}}, model.HealthPassing},
		{"app killed, waiting to restart", map[string]*api.TaskState{"app": {State: "pending", StartedAt: ran, Restarts: 1, LastRestart: ran.Add(time.Minute)}, "weft-proxy": {State: "running", StartedAt: ran}}, model.HealthCritical},
		{"sidecar killed, restart counted only", map[string]*api.TaskState{"app": {State: "running", StartedAt: ran}, "weft-proxy": {State: "pending", Restarts: 1}}, model.HealthCritical},
		{"app dead after a failure", map[string]*api.TaskState{"app": {State: "dead", Failed: true, StartedAt: ran}}, model.HealthCritical},
		{"prestart task finished", map[string]*api.TaskState{"init": {State: "dead", StartedAt: ran, FinishedAt: ran.Add(time.Second)}, "app": {State: "running", StartedAt: ran}}, model.HealthPassing},
		{"poststop task not started", map[string]*api.TaskState{"cleanup": {State: "pending"}, "app": {State: "running", StartedAt: ran}}, model.HealthPassing},
		{"nil task state", map[string]*api.TaskState{"app": nil}, model.HealthPassing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &api.AllocationListStub{ClientStatus: api.AllocClientStatusRunning, TaskStates: tc.tasks}
			if got := health(a, false, nil, ""); got != tc.want {
				t.Errorf("health = %q, want %q (down task %q)", got, tc.want, downTask(a))
			}
		})
	}
}

// instancesOf takes the instances out of Translate's snapshot.
func instancesOf(s model.Snapshot, diags []sdk.Diagnostic) ([]model.Instance, []sdk.Diagnostic) {
	return s.Instances, diags
}
