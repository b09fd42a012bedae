package local

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// instanceSpec is everything the adapter decided about one instance: who it
// is, where it listens and what processes run it.
type instanceSpec struct {
	ID        string
	Service   string
	Workload  string // the workloads file's block label
	Namespace string
	Address   string
	Port      int
	Meta      map[string]string
	Tags      []string
	// Check, if set, is probed by the adapter against the app.
	Check *checkSpec
	// ProxyMode is "" for a sidecar (the default), ProxyModeNode when the
	// node proxy serves the instance, or ProxyModeApplication when its
	// application's proxy does; Proxy is then the shared proxy's spec, the
	// same in every instance it serves (nodeproxy.go).
	ProxyMode string
	// ProxyAddr is the address whose sidecar group the instance's proxy
	// runs with under the guard (guard.go): the instance's own for a
	// sidecar; for a shared proxy, that of the first instance it serves,
	// whose own sidecar group is free since it has no sidecar.
	ProxyAddr string
	// Node is the adapter's node (its option node): where it places every
	// instance (model.Instance.Node).
	Node string

	App   procSpec
	Proxy procSpec

	// PortRange points at the service's `port` for messages.
	PortRange hcl.Range
}

// Ports returns the instance's named ports as reported in the snapshot.
func (s instanceSpec) Ports() map[string]int {
	return map[string]int{model.PortApp: s.Port, model.PortMesh: meshPort, "admin": adminPort}
}

// procSpec is one process to run. Env is added to the adapter's own
// environment; it never holds secrets (join tokens are added at start).
type procSpec struct {
	Argv []string // Argv[0] is an absolute path
	Env  []string
	Dir  string
	Log  string
}

// hash identifies what the process was started with, to decide whether a
// running process can be adopted or must be restarted after a change.
func (p procSpec) hash() string {
	h := sha256.New()
	for _, part := range [][]string{p.Argv, {"\x01"}, p.Env, {"\x01", p.Dir}} {
		for _, s := range part {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// layout names the files the adapter keeps under MeshContext.DataDir.
type layout struct{ dir string }

func (l layout) stateFile() string         { return filepath.Join(l.dir, "local-state.json") }
func (l layout) trustBundle() string       { return filepath.Join(l.dir, "trust-bundle.pem") }
func (l layout) logDir() string            { return filepath.Join(l.dir, "logs") }
func (l layout) proxyDir(id string) string { return filepath.Join(l.dir, "proxy", id) }

// serveFile is where the shared proxy of slot id reads what it serves
// (nodeproxy.go).
func (l layout) serveFile(id string) string { return filepath.Join(l.dir, "proxy", id+".serve.json") }
func (l layout) log(id, kind string) string {
	return filepath.Join(l.logDir(), id+"."+kind+".log")
}

// planInput is what a plan is computed from.
type planInput struct {
	W         *workloads
	Mesh      sdk.MeshContext
	ProxyPath string            // resolved MeshContext.ProxyBinary
	First     netip.Addr        // first address to hand out
	Prev      map[string]string // instance ID -> address kept from before
	Node      string            // the adapter's node name (option node)
	// PrevShared is the address whose group each running shared proxy
	// runs with, by slot ID (runner.sharedAddrs): kept while it serves
	// that address's instance, so that the proxy is not restarted.
	PrevShared map[string]string
}

// buildPlan turns a decoded workloads file into one spec per instance, in
// stable order (service name, then index).
func buildPlan(in planInput) ([]instanceSpec, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	type pending struct {
		svc   *service
		index int
		id    string
	}
	var all []pending
	for _, s := range in.W.Services {
		for i := 0; i < s.Instances; i++ {
			all = append(all, pending{s, i, fmt.Sprintf("%s-%d", s.Name, i)})
		}
	}
	ids := make([]string, len(all))
	for i, p := range all {
		ids[i] = p.id
	}
	addrs, err := assignAddresses(ids, in.Prev, in.First)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Too many instances",
			Detail:   fmt.Sprintf("%s: %v. Lower `instances`, or set the option first_address lower.", in.W.Filename, err),
		}}
	}

	commands := map[string]string{}
	for _, s := range in.W.Services {
		path, err := resolveCommand(s.Command, in.W.Dir)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Command not found",
				Detail: fmt.Sprintf("Service %q: %v. Build the program, or fix `command`: a relative path resolves against %s, a bare name is looked up in PATH.",
					s.Name, err, in.W.Dir),
				Subject: s.CommandRange.Ptr(),
			})
			continue
		}
		commands[s.Name] = path
	}
	if diags.HasErrors() {
		return nil, diags
	}

	l := layout{in.Mesh.DataDir}
	var specs []instanceSpec
	for _, p := range all {
		s := p.svc
		ns := s.Namespace
		if ns == "" {
			ns = model.DefaultNamespace
		}
		spec := instanceSpec{
			ID: p.id, Service: s.Service, Workload: s.Name, Namespace: ns, Address: addrs[p.id], Port: s.Port,
			Meta: s.Meta, Tags: s.Tags, PortRange: s.PortRange, Check: s.Check,
			Node: in.Node,
		}
		if s.ProxyMode == ProxyModeNode || s.ProxyMode == ProxyModeApplication {
			spec.ProxyMode = s.ProxyMode // else "": a sidecar
		}
		spec.ProxyAddr = spec.Address
		vars := map[string]string{
			"HOST": spec.Address, "PORT": strconv.Itoa(s.Port),
			"WEFT_SERVICE": s.Service, "WEFT_INSTANCE": p.id, "WEFT_NAMESPACE": ns,
		}
		argv := []string{commands[s.Name]}
		for _, e := range s.Args {
			v, d := evalString(e, vars, "args")
			diags = append(diags, d...)
			argv = append(argv, v)
		}
		env := []string{
			"HOST=" + spec.Address, "PORT=" + strconv.Itoa(s.Port),
			"WEFT_SERVICE=" + s.Service, "WEFT_INSTANCE=" + p.id, "WEFT_NAMESPACE=" + ns,
		}
		for _, e := range s.Env {
			v, d := evalString(e.Value, vars, "env")
			diags = append(diags, d...)
			env = append(env, e.Name+"="+v)
		}
		spec.App = procSpec{Argv: argv, Env: env, Dir: in.W.Dir, Log: l.log(p.id, "app")}
		spec.Proxy = procSpec{
			Argv: proxyArgv(in.ProxyPath, p.id, spec.Address, in.Mesh),
			// The identity is the sidecar's: when it changes, the sidecar
			// restarts and joins anew.
			Env: []string{"WEFT_SERVICE=" + s.Service, "WEFT_INSTANCE=" + p.id, "WEFT_NAMESPACE=" + ns},
			Log: l.log(p.id, "proxy"),
		}
		specs = append(specs, spec)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	withSharedProxies(specs, in)
	return specs, diags
}

// proxyArgv is the sidecar's command line. The join token is never on it:
// it travels in WEFT_JOIN_TOKEN.
func proxyArgv(proxy, id, addr string, mesh sdk.MeshContext) []string {
	l := layout{mesh.DataDir}
	argv := []string{proxy, "--instance", id}
	for _, c := range mesh.ControllerAddrs {
		argv = append(argv, "--controller", c)
	}
	return append(argv,
		"--trust-bundle", l.trustBundle(),
		"--admin", net.JoinHostPort(addr, strconv.Itoa(adminPort)),
		"--data-dir", l.proxyDir(id),
	)
}

// resolveCommand finds the program a service runs: a bare name in PATH, a
// relative path against dir.
func resolveCommand(cmd, dir string) (string, error) {
	if !strings.Contains(cmd, "/") {
		p, err := exec.LookPath(cmd)
		if err != nil {
			return "", fmt.Errorf("%q is not in PATH", cmd)
		}
		return filepath.Abs(p)
	}
	p := cmd
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)
	info, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%s does not exist", p)
	case err != nil:
		return "", fmt.Errorf("checking %s: %w", p, err)
	case info.IsDir():
		return "", fmt.Errorf("%s is a directory", p)
	case info.Mode()&0o111 == 0:
		return "", fmt.Errorf("%s is not executable (chmod +x it)", p)
	}
	return p, nil
}

// checkPorts tries to listen on each port of addr, to report a conflict
// before anything starts. It returns which port failed and why.
func checkPorts(addr string, ports ...int) (int, error) {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			return p, err
		}
		_ = l.Close()
	}
	return 0, nil
}
