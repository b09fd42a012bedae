package local

import (
	"reflect"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

func TestTranslate(t *testing.T) {
	api0 := instanceSpec{
		ID: "api-0", Service: "api", Workload: "api", Namespace: "default", Address: "127.0.0.2", Port: 8080,
		Meta: map[string]string{"version": "v1"}, Tags: []string{"demo"},
	}
	api1 := api0
	api1.ID, api1.Address = "api-1", "127.0.0.3"
	store := instanceSpec{ID: "store-0", Service: "store", Workload: "store-main", Namespace: "shop", Address: "127.0.0.4", Port: 9000}
	ports := func(app int) map[string]int { return map[string]int{"app": app, "mesh": 15001, "admin": 15000} }

	tests := []struct {
		name string
		in   []instanceStatus
		want []model.Instance
	}{
		{
			name: "nothing declared",
			in:   nil,
			want: []model.Instance{},
		},
		{
			name: "running app and sidecar, sorted by ID",
			in: []instanceStatus{
				{Spec: store, AppPID: 30, AppRunning: true, ProxyPID: 31, ProxyRunning: true},
				{Spec: api0, AppPID: 10, AppRunning: true, ProxyPID: 11, ProxyRunning: true, Restarts: 2},
			},
			want: []model.Instance{
				{
					ID: "api-0", Service: "api", Namespace: "default", Address: "127.0.0.2", Ports: ports(8080),
					Meta: map[string]string{"version": "v1"}, Tags: []string{"demo"}, Health: model.HealthPassing,
					Labels:   map[string]string{"pid": "10", "proxy_pid": "11", "restarts": "2", "workloads_file": "w.hcl"},
					Workload: map[string]string{model.WorkloadScheduler: "local", "name": "api"},
				},
				{
					ID: "store-0", Service: "store", Namespace: "shop", Address: "127.0.0.4", Ports: ports(9000),
					Health:   model.HealthPassing,
					Labels:   map[string]string{"pid": "30", "proxy_pid": "31", "restarts": "0", "workloads_file": "w.hcl"},
					Workload: map[string]string{model.WorkloadScheduler: "local", "name": "store-main"},
				},
			},
		},
		{
			name: "app down is critical even with its sidecar up",
			in:   []instanceStatus{{Spec: api1, ProxyPID: 21, ProxyRunning: true}},
			want: []model.Instance{{
				ID: "api-1", Service: "api", Namespace: "default", Address: "127.0.0.3", Ports: ports(8080),
				Meta: map[string]string{"version": "v1"}, Tags: []string{"demo"}, Health: model.HealthCritical,
				Labels:   map[string]string{"proxy_pid": "21", "restarts": "0", "workloads_file": "w.hcl"},
				Workload: map[string]string{model.WorkloadScheduler: "local", "name": "api"},
			}},
		},
		{
			// No caller can reach an app whose sidecar is down.
			name: "sidecar down is critical",
			in:   []instanceStatus{{Spec: store, AppPID: 40, AppRunning: true}},
			want: []model.Instance{{
				ID: "store-0", Service: "store", Namespace: "shop", Address: "127.0.0.4", Ports: ports(9000),
				Health:   model.HealthCritical,
				Labels:   map[string]string{"pid": "40", "restarts": "0", "workloads_file": "w.hcl"},
				Workload: map[string]string{model.WorkloadScheduler: "local", "name": "store-main"},
			}},
		},
	}
	// The workloads file's proxy_mode is reported in Meta, where the
	// controller compares it with policy's; a sidecar reports none, even
	// if the file's meta claims one.
	onNode := api0
	onNode.ProxyMode = ProxyModeNode
	onApp := store
	onApp.ProxyMode = ProxyModeApplication
	claims := store
	claims.ID, claims.Meta = "store-1", map[string]string{model.MetaProxyMode: "node"}
	tests = append(tests, struct {
		name string
		in   []instanceStatus
		want []model.Instance
	}{"proxy modes in Meta", []instanceStatus{
		{Spec: onNode, AppPID: 10, AppRunning: true, ProxyPID: 50, ProxyRunning: true},
		{Spec: onApp, AppPID: 30, AppRunning: true, ProxyPID: 51, ProxyRunning: true},
		{Spec: claims, AppPID: 32, AppRunning: true, ProxyPID: 33, ProxyRunning: true},
	}, []model.Instance{
		{
			ID: "api-0", Service: "api", Namespace: "default", Address: "127.0.0.2", Ports: ports(8080),
			Meta: map[string]string{"version": "v1", model.MetaProxyMode: "node"}, Tags: []string{"demo"}, Health: model.HealthPassing,
			Labels:   map[string]string{"pid": "10", "proxy_pid": "50", "restarts": "0", "workloads_file": "w.hcl"},
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": "api"},
		},
		{
			ID: "store-0", Service: "store", Namespace: "shop", Address: "127.0.0.4", Ports: ports(9000),
			Meta: map[string]string{model.MetaProxyMode: "application"}, Health: model.HealthPassing,
			Labels:   map[string]string{"pid": "30", "proxy_pid": "51", "restarts": "0", "workloads_file": "w.hcl"},
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": "store-main"},
		},
		{
			ID: "store-1", Service: "store", Namespace: "shop", Address: "127.0.0.4", Ports: ports(9000),
			Meta: map[string]string{}, Health: model.HealthPassing,
			Labels:   map[string]string{"pid": "32", "proxy_pid": "33", "restarts": "0", "workloads_file": "w.hcl"},
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": "store-main"},
		},
	}})
	checked := store
	checked.Check = &checkSpec{HTTP: "/healthz", Interval: time.Second, Timeout: time.Second}
	for _, c := range []struct {
		name   string
		app    bool
		result checkResult
		want   model.Health
		label  string
	}{
		{"check passing", true, checkResult{Status: checkPassing}, model.HealthPassing, "passing"},
		{"check failing", true, checkResult{Status: checkFailing, Output: "GET /healthz answered 500"}, model.HealthCritical, "failing"},
		{"check without a result yet", true, checkResult{}, model.HealthCritical, "none"},
		{"check passing but the app down", false, checkResult{Status: checkPassing}, model.HealthCritical, "passing"},
	} {
		in := instanceStatus{Spec: checked, AppRunning: c.app, ProxyPID: 41, ProxyRunning: true, Check: c.result}
		labels := map[string]string{"proxy_pid": "41", "restarts": "0", "workloads_file": "w.hcl", "check": c.label}
		if c.app {
			in.AppPID = 40
			labels["pid"] = "40"
		}
		tests = append(tests, struct {
			name string
			in   []instanceStatus
			want []model.Instance
		}{c.name, []instanceStatus{in}, []model.Instance{{
			ID: "store-0", Service: "store", Namespace: "shop", Address: "127.0.0.4", Ports: ports(9000),
			Health: c.want, Labels: labels,
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": "store-main"},
		}}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := instancesOf(translate(localState{file: "w.hcl", statuses: tt.in}))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("translate\n got %+v\nwant %+v", got, tt.want)
			}
			for _, in := range got {
				if err := in.Validate(); err != nil {
					t.Errorf("translated instance is invalid: %v", err)
				}
			}
		})
	}
}

// translate must not share maps or slices with the runner's specs: the
// registry keeps snapshots while the runner goes on.
func TestTranslateCopies(t *testing.T) {
	spec := instanceSpec{ID: "a-0", Service: "a", Address: "127.0.0.2", Port: 1, Meta: map[string]string{"k": "v"}, Tags: []string{"t"}}
	got := instancesOf(translate(localState{file: "w.hcl", statuses: []instanceStatus{{Spec: spec}}}))
	got[0].Meta["k"] = "changed"
	got[0].Tags[0] = "changed"
	if spec.Meta["k"] != "v" || spec.Tags[0] != "t" {
		t.Error("translate shares Meta or Tags with the spec")
	}
}

// instancesOf takes the instances out of translate's snapshot.
func instancesOf(s model.Snapshot, _ []sdk.Diagnostic) []model.Instance { return s.Instances }
