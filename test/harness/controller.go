package harness

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/refusals"
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

// LocalMesh is a controller started by StartLocalMesh, with the policy
// file it reads.
type LocalMesh struct {
	*Controller
	// PolicyDir is its --policy-dir; PolicyFile, the file in it.
	PolicyDir, PolicyFile string
}

// StartLocalMesh writes policy (PolicyDir/mesh.hcl, PolicyDir dir/policy)
// and the local adapter's workloads (dir/workloads.hcl), and starts
// binDir's controller on them with its data under dir/data
// (WeftController: polling the policy every 100ms). The local adapter's
// instances get loopback addresses from firstAddr on; args follow (say
// "--adapter-option", "local.isolation=none"). The controller stops like
// Ctrl-C at the test's cleanup, and not stopping within 30s of SIGINT is a
// test error.
func StartLocalMesh(t testing.TB, binDir, dir, policy, workloads, firstAddr string, args ...string) *LocalMesh {
	t.Helper()
	m := &LocalMesh{PolicyDir: WritePolicy(t, dir, policy)}
	m.PolicyFile = filepath.Join(m.PolicyDir, PolicyFile)
	wl := filepath.Join(dir, "workloads.hcl")
	WriteFile(t, wl, workloads)
	o := WeftController(binDir, filepath.Join(dir, "data"), FreeAddr(t), FreeAddr(t),
		append([]string{"--policy-dir", m.PolicyDir, "--adapter", "local=" + wl,
			"--adapter-option", "local.first_address=" + firstAddr}, args...)...)
	o.Process = CtrlC
	m.Controller = StartController(t, o)
	return m
}

// CtrlC stops a process like Ctrl-C (SIGINT), and its outliving 30s of
// it is a test error.
var CtrlC = Options{Signal: os.Interrupt, Grace: 30 * time.Second, MustStop: true}

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

// Status is the admin API's GET /v1/status (api.StatusReport), with the
// helpers the tests read it with.
type Status struct {
	api.StatusReport
}

// The parts of Status, by the names the tests use.
type (
	// AdapterStatus is one adapter plugin's state.
	AdapterStatus = api.AdapterReport
	// InstanceStatus is one instance the adapters reported.
	InstanceStatus = api.InstanceReport
	// SidecarStatus is one connected sidecar's configuration version.
	SidecarStatus = meshserver.StreamStatus
	// SkippedStatus is one instance the controller leaves out, and why.
	SkippedStatus = compile.Skipped
	// RefusedCounts are one API's refused handshakes, in all and by reason.
	RefusedCounts = refusals.Counts
)

// Acked: every sidecar has a configuration and acknowledged it.
func (s *Status) Acked() bool {
	for _, sc := range s.Sidecars {
		if sc.Version == 0 || sc.AckedVersion != sc.Version {
			return false
		}
	}
	return true
}

// Address is the address of service's first instance, "" when it has none.
func (s *Status) Address(service string) string {
	for _, in := range s.Instances {
		if in.Service == service {
			return in.Address
		}
	}
	return ""
}

// Converged: want instances known, each with a sidecar, and every sidecar
// has acknowledged its current configuration.
func Converged(want int) func(*Status) bool {
	return func(s *Status) bool {
		return len(s.Instances) == want && len(s.Sidecars) == want && s.Acked()
	}
}

// URL is the admin API's base URL, https://Admin.
func (c *Controller) URL() string { return "https://" + c.Admin }

// CACert is the CA bundle that verifies the controller: DataDir/ca/ca.crt.
func (c *Controller) CACert() string { return filepath.Join(c.DataDir, "ca", api.CAFile) }

// Client is the admin API client the tests use, the CLI's own
// (core/api), with the token and CA bundle from DataDir. token, when
// given, replaces the controller's token.
func (c *Controller) Client(token ...string) (*api.Client, error) {
	cfg := api.Config{Addr: c.Admin, CACert: c.CACert(), Timeout: 10 * time.Second}
	if len(token) > 0 {
		cfg.Token = token[0]
	} else {
		tok, err := api.ReadToken(c.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.Token = tok
	}
	return api.New(cfg)
}

// Call sends one request to the admin API with the controller's token
// (a JSON body when in is not nil) and decodes the answer into out.
func (c *Controller) Call(method, path string, in, out any) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Call(ctx, method, path, in, out)
}

// Status reads the admin API's GET /v1/status.
func (c *Controller) Status() (*Status, error) {
	var s Status
	if err := c.Call("GET", "/v1/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
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
