package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// CheckReport is what `weft check --json` prints (cmd/weft's report).
type CheckReport struct {
	OK      bool           `json:"ok"`
	Results []CheckResult  `json:"results"`
	Skipped []string       `json:"skipped"`
	Mesh    []CheckFinding `json:"mesh"`
}

// CheckFinding is one judgement of the installation or a sidecar by
// `weft check` (cmd/weft's).
type CheckFinding struct {
	Subject string `json:"subject"`
	Check   string `json:"check"`
	Level   string `json:"level"`
	Detail  string `json:"detail"`
	Fix     string `json:"fix"`
}

// CheckResult is one probe of `weft check`.
type CheckResult struct {
	Instance string `json:"instance"`
	Address  string `json:"address"`
	Kind     string `json:"kind"`
	Upstream string `json:"upstream"`
	OK       bool   `json:"ok"`
	Reason   string `json:"reason"`
}

// Rows maps the probes of one instance, "kind" (or "outbound
// <upstream>"), to the address probed.
func (r CheckReport) Rows(instance string) map[string]string {
	rows := map[string]string{}
	for _, p := range r.Results {
		if p.Instance == instance {
			rows[strings.TrimSpace(p.Kind+" "+p.Upstream)] = p.Address
		}
	}
	return rows
}

// WithoutWeftEnv is the test's environment without the WEFT_ variables
// that would point a weft command at another controller than its flags.
func WithoutWeftEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEFT_") {
			env = append(env, kv)
		}
	}
	return env
}

// RunWeft runs the weft binary at weft with args against the controller's
// admin API (--admin URL and --data-dir DataDir follow args), without the
// test's WEFT_ variables, for at most 2 minutes. It returns the command's
// standard output and error and its exit code; a command that could not
// run, or ran out of time, fails the test.
func (c *Controller) RunWeft(t testing.TB, weft string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "--admin", c.URL(), "--data-dir", c.DataDir)
	cmd := exec.CommandContext(ctx, weft, args...)
	cmd.Env = WithoutWeftEnv()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		code = exit.ExitCode()
	default:
		t.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String(), code
}

// Check runs `weft check --json` (args follow, say "--probes=false")
// against the controller (RunWeft), logs its results as a table and
// returns them, its standard error and its exit code. A run that printed
// no report fails the test.
func (c *Controller) Check(t testing.TB, weft string, args ...string) (CheckReport, string, int) {
	t.Helper()
	start := time.Now()
	out, stderr, code := c.RunWeft(t, weft, append([]string{"check", "--json"}, args...)...)
	var rep CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("weft check --json (exit %d) printed no report: %v\n%s\n%s", code, err, out, stderr)
	}
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tPORT\tKIND\tRESULT\tREASON")
	for _, r := range rep.Results {
		result := "OK"
		if !r.OK {
			result = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Instance, r.Address, strings.TrimSpace(r.Kind+" "+r.Upstream), result, r.Reason)
	}
	tw.Flush()
	t.Logf("weft check --json: exit %d in %v, %d probes, skipped %v\n%s%s", code, time.Since(start).Round(time.Millisecond), len(rep.Results), rep.Skipped, table.String(), stderr)
	return rep, stderr, code
}

// WaitCheck runs Check until done holds for its report and exit code, for
// at most timeout (weft check's own answer is the only signal of what it
// will see), and returns that run's report, standard error and exit code;
// what is what the failure says weft check did not do.
func (c *Controller) WaitCheck(t testing.TB, weft, what string, timeout time.Duration, done func(CheckReport, int) bool) (CheckReport, string, int) {
	t.Helper()
	var rep CheckReport
	var stderr string
	var code int
	err := Poll(context.Background(), timeout, 100*time.Millisecond, func() error {
		rep, stderr, code = c.Check(t, weft)
		if !done(rep, code) {
			return fmt.Errorf("exit %d", code)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("weft check did not %s: %v\n%s\n%+v", what, err, stderr, rep)
	}
	return rep, stderr, code
}
