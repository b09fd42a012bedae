package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ControllerOptions say how StartController runs `weft controller`.
type ControllerOptions struct {
	// Binary is the weft binary.
	Binary string
	// DataDir, Listen and Admin are its --data-dir, --listen and --admin.
	DataDir, Listen, Admin string
	// ProxyBinary, when set, is its --proxy-binary.
	ProxyBinary string
	// PolicyPoll, when set, is its --policy-poll.
	PolicyPoll string
	// Args follow the flags above.
	Args []string
	// Process says how the process runs and stops.
	Process Options
}

// WeftController are the options of a controller run from binDir's weft,
// its sidecars from binDir's weft-proxy, polling its policy every 100ms;
// args follow.
func WeftController(binDir, dataDir, listen, admin string, args ...string) ControllerOptions {
	return ControllerOptions{
		Binary: filepath.Join(binDir, "weft"), DataDir: dataDir, Listen: listen, Admin: admin,
		ProxyBinary: filepath.Join(binDir, "weft-proxy"), PolicyPoll: "100ms", Args: args,
	}
}

// Controller is a `weft controller` and its admin API. Its Process is nil
// when the test did not start it (Remote).
type Controller struct {
	*Process
	Admin, Listen, DataDir string

	t    testing.TB
	opts ControllerOptions
}

// StartController starts a controller, stopped at the test's cleanup.
func StartController(t testing.TB, o ControllerOptions) *Controller {
	t.Helper()
	args := []string{"controller", "--data-dir", o.DataDir, "--listen", o.Listen, "--admin", o.Admin}
	if o.ProxyBinary != "" {
		args = append(args, "--proxy-binary", o.ProxyBinary)
	}
	if o.PolicyPoll != "" {
		args = append(args, "--policy-poll", o.PolicyPoll)
	}
	args = append(args, o.Args...)
	p := Start(t, "controller", exec.Command(o.Binary, args...), o.Process)
	return &Controller{Process: p, Admin: o.Admin, Listen: o.Listen, DataDir: o.DataDir, t: t, opts: o}
}

// Remote is a controller the test did not start (a Nomad job, say),
// known by its admin address and data directory.
func Remote(admin, dataDir string) *Controller {
	return &Controller{Admin: admin, DataDir: dataDir}
}

// Restart stops the controller (if it still runs) and starts it again
// with the same options, for the same test.
func (c *Controller) Restart() *Controller {
	c.t.Helper()
	c.Stop()
	return StartController(c.t, c.opts)
}

// Status is the part of the admin API's GET /v1/status the tests read.
type Status struct {
	Policy      string           `json:"policy"`
	PolicyError string           `json:"policy_error"`
	Adapters    []AdapterStatus  `json:"adapters"`
	Instances   []InstanceStatus `json:"instances"`
	Sidecars    []SidecarStatus  `json:"sidecars"`
	// IdentityBinding and Skipped: the policy's identity_binding and the
	// instances left out of every endpoint set (reason "unbound workload").
	IdentityBinding string          `json:"identity_binding"`
	Skipped         []SkippedStatus `json:"skipped"`
}

// SkippedStatus is one instance the controller leaves out, and why.
type SkippedStatus struct {
	Adapter  string `json:"adapter"`
	Instance string `json:"instance"`
	Service  string `json:"service"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail"`
}

// AdapterStatus is one adapter plugin's state.
type AdapterStatus struct {
	Name      string `json:"name"`
	Pid       int    `json:"pid"`
	Running   bool   `json:"running"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"last_error"`
}

// InstanceStatus is one instance the adapters reported.
type InstanceStatus struct {
	Adapter  string         `json:"adapter"`
	ID       string         `json:"id"`
	Service  string         `json:"service"`
	Address  string         `json:"address"`
	Ports    map[string]int `json:"ports"`
	Health   string         `json:"health"`
	Identity string         `json:"identity"`
}

// SidecarStatus is one connected sidecar's configuration version.
type SidecarStatus struct {
	Instance     string `json:"instance"`
	Version      uint64 `json:"version"`
	AckedVersion uint64 `json:"acked_version"`
}

// Acked: every sidecar has a configuration and acknowledged it.
func (s *Status) Acked() bool {
	for _, sc := range s.Sidecars {
		if sc.Version == 0 || sc.AckedVersion != sc.Version {
			return false
		}
	}
	return true
}

// Converged: want instances known, each with a sidecar, and every sidecar
// has acknowledged its current configuration.
func Converged(want int) func(*Status) bool {
	return func(s *Status) bool {
		return len(s.Instances) == want && len(s.Sidecars) == want && s.Acked()
	}
}

// Status reads the admin API's status with the admin token from DataDir.
func (c *Controller) Status() (*Status, error) {
	tok, err := os.ReadFile(filepath.Join(c.DataDir, "admin.token"))
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest("GET", "http://"+c.Admin+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status: %s", resp.Status)
	}
	var s Status
	return &s, json.NewDecoder(resp.Body).Decode(&s)
}

// WaitFor polls the controller's status, its readiness signal, until cond
// holds, and returns that status. It fails the test if the controller
// exits, or after timeout with the last error and status; the
// controller's log is logged at cleanup.
func (c *Controller) WaitFor(t testing.TB, what string, timeout time.Duration, cond func(*Status) bool) *Status {
	t.Helper()
	var exited <-chan struct{}
	if c.Process != nil {
		exited = c.Exited()
	}
	deadline := time.Now().Add(timeout)
	var last error
	var lastStatus *Status
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("controller exited while waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
		s, err := c.Status()
		if err != nil {
			last = err
			continue
		}
		lastStatus = s
		if cond(s) {
			return s
		}
	}
	b, _ := json.Marshal(lastStatus)
	t.Fatalf("timed out after %v waiting for %s (last error: %v); last status: %s", timeout, what, last, b)
	return nil
}
