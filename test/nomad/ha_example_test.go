package nomad

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// TestControllerHAJob has a real Nomad agent (with the host volume the
// job's comment asks for) parse, validate and plan
// examples/nomad/controller-ha.nomad.hcl: three replicas, one per node, on
// a writable host volume, each given the three raft addresses, with the
// state key rendered 0400 from the job's variable and a health check on
// the controller's unauthenticated readiness endpoint. On this one node
// the plan places one replica and keeps the other two off it
// (distinct_hosts). A copy that names a host volume the node lacks is
// not placed at all, so the plan's placement is the test's to lose.
func TestControllerHAJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad; skipped with -short")
	}
	agent := nomadtest.StartWith(t, nomadtest.Options{HostVolumes: map[string]string{"weft-controller": t.TempDir()}})
	c := agent.Client()
	src, err := os.ReadFile("../../examples/nomad/controller-ha.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	servers := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} // never dialled: the plan places, nothing runs
	job, err := c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(src), Canonicalize: true,
		Variables: `servers = ["` + strings.Join(servers, `", "`) + `"]`})
	if err != nil {
		t.Fatalf("parsing controller-ha.nomad.hcl: %v", err)
	}
	val, _, err := c.Jobs().Validate(job, nil)
	if err != nil || val.Error != "" || len(val.ValidationErrors) > 0 {
		t.Fatalf("validating: %v %q %v", err, val.Error, val.ValidationErrors)
	}
	if val.Warnings != "" {
		t.Errorf("Nomad warns about the job: %s", val.Warnings)
	}

	if len(job.TaskGroups) != 1 {
		t.Fatalf("task groups %d, want one", len(job.TaskGroups))
	}
	g := job.TaskGroups[0]
	if *g.Count != 3 || *g.Update.MaxParallel != 1 {
		t.Errorf("count %d, update max_parallel %d; want 3 replicas replaced one at a time", *g.Count, *g.Update.MaxParallel)
	}
	if !slices.ContainsFunc(g.Constraints, func(c *api.Constraint) bool { return c.Operand == "distinct_hosts" }) {
		t.Errorf("constraints %v, want distinct_hosts", g.Constraints)
	}
	if v := g.Volumes["data"]; v == nil || v.Type != "host" || v.ReadOnly {
		t.Errorf("volume data %+v, want a writable host volume", v)
	}
	task := g.Tasks[0]
	args, _ := task.Config["args"].([]any)
	flags := map[string][]string{}
	for i := 0; i+1 < len(args); i++ {
		if a, _ := args[i].(string); strings.HasPrefix(a, "--") {
			v, _ := args[i+1].(string)
			flags[a] = append(flags[a], v)
		}
	}
	var wantJoin []string
	for _, s := range servers {
		wantJoin = append(wantJoin, s+":7402")
	}
	if !slices.Equal(flags["--join"], wantJoin) {
		t.Errorf("--join %v, want %v", flags["--join"], wantJoin)
	}
	for _, f := range []string{"--raft-dir", "--data-dir"} {
		if len(flags[f]) != 1 || !strings.HasPrefix(flags[f][0], *task.VolumeMounts[0].Destination+"/") {
			t.Errorf("%s %v, want a directory on the host volume", f, flags[f])
		}
	}
	var key *api.Template
	for _, tp := range task.Templates {
		if *tp.DestPath == "secrets/state.key" {
			key = tp
		}
	}
	if key == nil || *key.Perms != "400" || !strings.Contains(*key.EmbeddedTmpl, "nomadVar") {
		t.Errorf("state key template %+v, want secrets/state.key from the job's variable, perms 400", key)
	} else if flags["--state-key-file"][0] != "${NOMAD_SECRETS_DIR}/state.key" {
		t.Errorf("--state-key-file %v, want the rendered secrets/state.key", flags["--state-key-file"])
	}
	if chk := g.Services[0].Checks[0]; chk.Path != "/v1/health/ready" || chk.Protocol != "https" {
		t.Errorf("check %+v, want HTTPS GET /v1/health/ready", chk)
	}

	plan, _, err := c.Jobs().Plan(job, true, nil)
	if err != nil {
		t.Fatalf("planning: %v", err)
	}
	if plan.Diff == nil || plan.Diff.Type != "Added" {
		t.Errorf("plan diff %+v, want the job added", plan.Diff)
	}
	placed := 0
	for _, d := range plan.Annotations.DesiredTGUpdates {
		placed += int(d.Place)
	}
	failed := plan.FailedTGAllocs["controller"]
	if failed == nil {
		t.Fatalf("the plan places all three on one node: distinct_hosts does not hold (placed %d)", placed)
	}
	t.Logf("plan: %d to place; on this one node: %d filtered by %v, %d more failed alike", placed, failed.NodesFiltered, failed.ConstraintFiltered, failed.CoalescedFailures)
	if _, ok := failed.ConstraintFiltered["distinct_hosts"]; !ok || failed.CoalescedFailures != 1 {
		t.Errorf("placement failures %+v, want two replicas kept off the node only by distinct_hosts", failed)
	}

	// The same job naming a host volume the node lacks: nothing placed.
	src2 := strings.Replace(string(src), `source    = "weft-controller"`, `source    = "weft-controller-missing"`, 1)
	job2, err := c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: src2, Canonicalize: true,
		Variables: `servers = ["` + strings.Join(servers, `", "`) + `"]`})
	if err != nil {
		t.Fatal(err)
	}
	plan2, _, err := c.Jobs().Plan(job2, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	f2 := plan2.FailedTGAllocs["controller"]
	if f2 == nil || f2.CoalescedFailures != 2 {
		t.Fatalf("a missing host volume: placement failures %+v, want all three replicas unplaced", f2)
	}
	t.Logf("without the host volume: %v", f2.ConstraintFiltered)
}
