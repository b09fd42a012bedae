package nomad

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Allocations in testdata/checks.json (recorded from Nomad 1.6.1 by
// TestRecordChecks): the meshed service of each has an http check, and a
// task service <job>-admin (weft_mesh=false) a passing tcp check.
const (
	checkedOK  = "f32c1233-1168-c350-4658-24abb1d38e47" // http check passes
	checkedBad = "705961d8-f682-bb95-0119-360368f537a0" // http check fails (404)
	checkedNew = "26e9ea35-b06a-2e4f-8e30-9a7b5f89b535" // http check not run yet (pending)
)

// loadChecks reads testdata/checks.json without its deployments: it was
// recorded while each job's first deployment ran, which keeps every
// allocation critical until Nomad finds it healthy (loadChecksRaw keeps
// them).
func loadChecks(t *testing.T) State {
	t.Helper()
	st := loadChecksRaw(t)
	st.Deployments = nil
	return st
}

func loadChecksRaw(t *testing.T) State {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "checks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// setResult sets the status of the named check of service in alloc.
func setResult(t *testing.T, st State, alloc, service, status string) {
	t.Helper()
	for id, r := range st.Checks[alloc].Results {
		if r.Service == service {
			r.Status = status
			st.Checks[alloc].Results[id] = r
			return
		}
	}
	t.Fatalf("no check of %s in %s", service, alloc)
}

func TestTranslateChecks(t *testing.T) {
	all := map[string]model.Health{checkedOK: model.HealthPassing, checkedBad: model.HealthCritical, checkedNew: model.HealthCritical}
	with := func(alloc string, h model.Health) map[string]model.Health {
		m := map[string]model.Health{}
		for k, v := range all {
			m[k] = v
		}
		m[alloc] = h
		return m
	}
	for _, tc := range []struct {
		name     string
		change   func(t *testing.T, st *State)
		want     map[string]model.Health // by allocation
		wantDiag string                  // a diagnostic's summary holds it
	}{
		{"as recorded: passing, failing, not run yet", func(*testing.T, *State) {}, all, ""},
		{"the failing check passes again", func(t *testing.T, st *State) { setResult(t, *st, checkedBad, "checked-bad", checkSuccess) },
			with(checkedBad, model.HealthPassing), ""},
		{"the passing check fails", func(t *testing.T, st *State) { setResult(t, *st, checkedOK, "checked-ok", checkFailure) },
			with(checkedOK, model.HealthCritical), ""},
		{"a status Nomad may add later is not passing", func(t *testing.T, st *State) { setResult(t, *st, checkedOK, "checked-ok", "warning") },
			with(checkedOK, model.HealthCritical), ""},
		{"another service's check fails: not this instance's", func(t *testing.T, st *State) { setResult(t, *st, checkedOK, "checked-ok-admin", checkFailure) },
			all, ""},
		{"a declared check without a result", func(t *testing.T, st *State) {
			for id, r := range st.Checks[checkedOK].Results {
				if r.Service == "checked-ok" {
					delete(st.Checks[checkedOK].Results, id)
				}
			}
		}, with(checkedOK, model.HealthCritical), ""},
		{"no result at all", func(t *testing.T, st *State) { st.Checks[checkedOK].Results = nil },
			with(checkedOK, model.HealthCritical), ""},
		{"two declared, one passing result", func(t *testing.T, st *State) { st.Checks[checkedOK].Declared["checked-ok"] = 2 },
			with(checkedOK, model.HealthCritical), ""},
		{"results that cannot be read", func(t *testing.T, st *State) {
			st.Checks[checkedBad].Results, st.Checks[checkedBad].Err = nil, "Unexpected response code: 500 (no path to node)"
		}, with(checkedBad, model.HealthWarning), "cannot read the checks of allocation " + checkedBad},
		{"a service that declares no check", func(t *testing.T, st *State) { delete(st.Checks[checkedBad].Declared, "checked-bad") },
			with(checkedBad, model.HealthPassing), ""},
		{"an allocation without checks", func(t *testing.T, st *State) { delete(st.Checks, checkedNew) },
			with(checkedNew, model.HealthPassing), ""},
		{"checks of a service registered under another name", func(t *testing.T, st *State) {
			st.Checks[checkedOK].Declared["${NOMAD_JOB_NAME}"] = 1
		}, all, "checks of service ${NOMAD_JOB_NAME} in allocation " + checkedOK + " not applied"},
		{"a running deployment that has not found them healthy", func(t *testing.T, st *State) { st.Deployments = loadChecksRaw(t).Deployments },
			with(checkedOK, model.HealthCritical), ""},
		{"a task down wins over passing checks", func(t *testing.T, st *State) {
			a := allocByID(*st, checkedOK)
			a.TaskStates = map[string]*api.TaskState{"web": {State: "pending", Restarts: 1}}
		}, with(checkedOK, model.HealthCritical), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := loadChecks(t)
			tc.change(t, &st)
			snap, diags := Translate(st)
			got := map[string]model.Health{}
			for _, in := range snap.Instances {
				got[in.Labels[FactAllocID]] = in.Health
			}
			for alloc, want := range tc.want {
				if got[alloc] != want {
					t.Errorf("allocation %s: health %q, want %q", alloc, got[alloc], want)
				}
			}
			if len(snap.Instances) != 3 {
				t.Errorf("%d instances, want the 3 meshed services (the -admin services are weft_mesh=false)", len(snap.Instances))
			}
			if tc.wantDiag == "" && len(diags) > 0 {
				t.Errorf("diagnostics %v, want none", diags)
			}
			if tc.wantDiag != "" && !hasDiag(diags, tc.wantDiag) {
				t.Errorf("diagnostics %v, want one about %q", diags, tc.wantDiag)
			}
		})
	}
}

func allocByID(st State, id string) *api.AllocationListStub {
	for _, a := range st.Allocs {
		if a.ID == id {
			return a
		}
	}
	panic("no allocation " + id)
}

func hasDiag(diags []sdk.Diagnostic, summary string) bool {
	for _, d := range diags {
		if strings.Contains(d.Summary, summary) {
			return true
		}
	}
	return false
}

func TestChecksHealthSaysWhy(t *testing.T) {
	st := loadChecks(t)
	for _, tc := range []struct {
		alloc, service, want string
	}{
		{checkedBad, "checked-bad", `check "http" fails (HTTP 404): <!DOCTYPE HTML> <html lang="en"> <head>`},
		{checkedNew, "checked-new", `check "http" has no result yet (pending)`},
		{checkedOK, "checked-ok", ""},
	} {
		t.Run(tc.service, func(t *testing.T) {
			_, why := checksHealth(st.Checks[tc.alloc], tc.service)
			if !strings.HasPrefix(why, tc.want) || (tc.want == "") != (why == "") {
				t.Errorf("why = %q, want it to start with %q", why, tc.want)
			}
		})
	}
}

// The declared checks are read from the job, native services only, group
// and task level.
func TestDeclaredChecks(t *testing.T) {
	name := func(s string) *string { return &s }
	job := &api.Job{TaskGroups: []*api.TaskGroup{
		{Name: name("g"), Services: []*api.Service{
			{Name: "web", Provider: "nomad", Checks: []api.ServiceCheck{{Type: "http"}, {Type: "tcp"}}},
			{Name: "consul-svc", Provider: "consul", Checks: []api.ServiceCheck{{Type: "http"}}},
			{Name: "unchecked", Provider: "nomad"},
		}, Tasks: []*api.Task{{Services: []*api.Service{{Name: "admin", Provider: "nomad", Checks: []api.ServiceCheck{{Type: "tcp"}}}}}, nil}},
		{Name: name("quiet"), Services: []*api.Service{{Name: "q", Provider: "nomad"}}},
		nil,
	}}
	got := declaredChecks(job)
	if len(got) != 1 || len(got["g"]) != 2 || got["g"]["web"] != 2 || got["g"]["admin"] != 1 {
		t.Errorf("declaredChecks = %v, want g: web 2, admin 1", got)
	}
	if len(declaredChecks(nil)) != 0 {
		t.Error("declaredChecks(nil) is not empty")
	}
}

// A status change is what the poll reports; a new output or time is not.
func TestStatusKey(t *testing.T) {
	st := loadChecks(t)
	before := statusKey(st.Checks)
	for id, r := range st.Checks[checkedOK].Results {
		r.Output, r.Timestamp = "again", r.Timestamp+1
		st.Checks[checkedOK].Results[id] = r
	}
	if statusKey(st.Checks) != before {
		t.Error("a new output and time changed the status key")
	}
	setResult(t, st, checkedOK, "checked-ok", checkFailure)
	if statusKey(st.Checks) == before {
		t.Error("a failing check did not change the status key")
	}
	st.Checks[checkedNew].Err = "unreachable"
	if !strings.Contains(statusKey(st.Checks), checkedNew+" error") {
		t.Error("an unreadable allocation is not in the status key")
	}
}

func TestCheckPollOption(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		value   string
		want    time.Duration
		wantErr bool
	}{
		{"", time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"10ms", 0, true},
		{"0s", 0, true},
		{"-1s", 0, true},
		{"soon", 0, true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			opts := map[string]string{}
			if tc.value != "" {
				opts[OptionCheckPoll] = tc.value
			}
			cfg, diags := parseConfig(&sdk.ConfigureRequest{Source: "http://127.0.0.1:4646", Options: opts}, getenv)
			if sdk.HasErrors(diags) != tc.wantErr {
				t.Fatalf("diagnostics %v, want an error: %v", diags, tc.wantErr)
			}
			if !tc.wantErr && cfg.checkPoll != tc.want {
				t.Errorf("check_poll %v, want %v", cfg.checkPoll, tc.want)
			}
		})
	}
}

// The log says once which instance its checks keep out and why, and when
// it is back.
func TestLogChecks(t *testing.T) {
	var buf strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	st := loadChecks(t)
	failing := map[string]string{}
	logChecks(log, st, failing)
	logChecks(log, st, failing) // nothing new
	if n := strings.Count(buf.String(), "keep this instance from callers"); n != 2 {
		t.Errorf("%d warnings, want 2 (checked-bad and checked-new, once each):\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), InstanceID(checkedBad, "checked-bad")) || !strings.Contains(buf.String(), `check \"http\" fails`) {
		t.Errorf("the log does not say which instance and why:\n%s", buf.String())
	}
	buf.Reset()
	setResult(t, st, checkedBad, "checked-bad", checkSuccess)
	logChecks(log, st, failing)
	if !strings.Contains(buf.String(), "pass again") || len(failing) != 1 {
		t.Errorf("after the check passed: log %q, failing %v", buf.String(), failing)
	}
}
