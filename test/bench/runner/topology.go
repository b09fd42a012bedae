package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/weftmesh/weft/core/policy"
)

// Cores: the proxies of every candidate share proxyCore; the load
// generator and the backend share loadCore.
const (
	proxyCore = "0"
	loadCore  = "1"
)

// proc is a process the suite started, pinned with taskset.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(name, logDir, core string, env []string, argv ...string) (*proc, error) {
	args := append([]string{"-c", core}, argv...)
	cmd := exec.Command("taskset", args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// pid is the process's own id: taskset execs the program in place.
func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v (see its log)", p.name, p.err)
	default:
		return nil
	}
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string, procs []*proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		for _, p := range procs {
			if e := p.exited(); e != nil {
				return e
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s to accept connections: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// candidate is one way of carrying traffic from the load generator to
// the backend.
type candidate interface {
	Name() string
	// start brings the chain up for one protocol family and returns the
	// address the load generator targets.
	start(ctx context.Context, family string) (entry string, err error)
	// pids of the proxies (none for direct).
	pids() []int
	stop()
}

// env is what every candidate shares.
type env struct {
	bin     string // directory with weft-proxy, weft-load
	work    string
	backend map[string]string // family -> backend address
	ctl     *controller
	client  *leaf
	server  *leaf
	bulk    int
	sink    *traceSink // where traced scenarios export spans
}

// direct: the load generator talks to the backend.
type direct struct{ e *env }

func (d *direct) Name() string                                      { return "direct" }
func (d *direct) start(_ context.Context, f string) (string, error) { return d.e.backend[f], nil }
func (d *direct) pids() []int                                       { return nil }
func (d *direct) stop()                                             {}

// haproxy: two HAProxy instances, client side and server side, with mTLS
// between them using the same certificates as Weft, TLS 1.3 only,
// upstream connection reuse (http-reuse always, HTTP/2 between the two:
// HAProxy's faster choice here, though Weft's sidecars carry HTTP/1.1
// traffic as HTTP/1.1; see BENCHMARKS.md), one thread each.
type haproxyCand struct {
	e     *env
	procs []*proc
}

func (h *haproxyCand) Name() string { return "haproxy" }

var haproxyTmpl = template.Must(template.New("").Parse(`global
    nbthread 1
    maxconn 8000
    ssl-server-verify required
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode {{.Mode}}
    timeout connect 5s
    timeout client 120s
    timeout server 120s
{{- if eq .Mode "http"}}
    http-reuse always
{{- end}}
frontend fe
{{- if .Edge}}
    bind {{.Listen}} ssl crt {{.Crt}} alpn http/1.1
{{- else if .TLS}}
    bind {{.Listen}} ssl crt {{.Crt}} ca-file {{.CA}} verify required{{if .ALPN}} alpn h2,http/1.1{{end}}
{{- else}}
    bind {{.Listen}}{{if .H2Front}} proto h2{{end}}
{{- end}}
    default_backend be
backend be
{{- if .TLS}}
    server s {{.Next}}{{if .H2Back}} proto h2{{end}}
{{- else}}
    server s {{.Next}} ssl crt {{.Crt}} ca-file {{.CA}} verify required no-ssl-reuse{{if .ALPN}} alpn h2{{end}}
{{- end}}
`))

type haproxyConf struct {
	Mode, Listen, Next, Crt, CA string
	TLS                         bool // terminates mTLS (server side)
	Edge                        bool // client side ends TLS from outside (the gateway family), no client certificate
	ALPN, H2Front, H2Back       bool
}

func (h *haproxyCand) start(_ context.Context, family string) (string, error) {
	mesh, err1 := freePort()
	entry, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	mode := "http"
	if family == "tcp" {
		mode = "tcp"
	}
	meshAddr, entryAddr := fmt.Sprintf("127.0.0.1:%d", mesh), fmt.Sprintf("127.0.0.1:%d", entry)
	confs := map[string]haproxyConf{
		"haproxy-server": {Mode: mode, Listen: meshAddr, Next: h.e.backend[family], Crt: h.e.server.Combined, CA: h.e.server.Roots, TLS: true, ALPN: mode == "http", H2Back: family == "grpc"},
		"haproxy-client": {Mode: mode, Listen: entryAddr, Next: meshAddr, Crt: h.e.client.Combined, CA: h.e.client.Roots, ALPN: mode == "http", H2Front: family == "grpc", Edge: family == "gateway"},
	}
	for _, name := range []string{"haproxy-server", "haproxy-client"} {
		f := filepath.Join(h.e.work, name+".cfg")
		var b strings.Builder
		if err := haproxyTmpl.Execute(&b, confs[name]); err != nil {
			return "", err
		}
		if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
			return "", err
		}
		p, err := startProc(name, h.e.work, proxyCore, nil, "haproxy", "-db", "-f", f)
		if err != nil {
			return "", err
		}
		h.procs = append(h.procs, p)
	}
	if err := waitTCP(meshAddr, h.procs, 10*time.Second); err != nil {
		return "", err
	}
	return entryAddr, waitTCP(entryAddr, h.procs, 10*time.Second)
}

func (h *haproxyCand) pids() []int { return pidsOf(h.procs) }
func (h *haproxyCand) stop()       { stopAll(&h.procs) }

func pidsOf(ps []*proc) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.pid())
	}
	return out
}

func stopAll(ps *[]*proc) {
	for _, p := range *ps {
		p.stop()
	}
	*ps = nil
}

// weft: two weft-proxy processes, GOMAXPROCS=1 each, fed by the
// controller, starting from data directories that hold the same
// certificates HAProxy uses.
type weftCand struct {
	e     *env
	procs []*proc
	mesh  benchMesh // as last applied
}

func (w *weftCand) Name() string { return "weft" }

var families = map[string]policy.Protocol{"http": policy.HTTP, "gateway": policy.HTTP, "grpc": policy.GRPC, "tcp": policy.TCP}

func (w *weftCand) start(ctx context.Context, family string) (string, error) {
	var ports [6]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return "", err
		}
		ports[i] = p
	}
	_, appPort, _ := net.SplitHostPort(w.e.backend[family])
	app, _ := strconv.Atoi(appPort)
	m := benchMesh{Protocol: families[family], ServerMesh: ports[0], ServerApp: app, ClientMesh: ports[1], ClientUpstream: ports[2], BulkUpstream: ports[3], BulkEndpoints: w.e.bulk}
	if family == "gateway" {
		// client-1 is an ingress gateway: TLS from outside on ClientUpstream
		// with the certificate HAProxy's edge serves, mTLS to server-1.
		m.Gateway = &policy.GatewayListenerTLS{CertFile: w.e.client.CertFile, KeyFile: w.e.client.KeyFile}
	}
	m.apply(w.e.ctl)
	w.mesh = m
	for i, s := range []struct {
		instance string
		l        *leaf
	}{{"server-1", w.e.server}, {"client-1", w.e.client}} {
		dd := filepath.Join(w.e.work, "weft-"+s.instance)
		os.RemoveAll(dd)
		if err := s.l.dataDir(dd, s.instance); err != nil {
			return "", err
		}
		admin := fmt.Sprintf("127.0.0.1:%d", ports[4+i])
		p, err := startProc("weft-proxy-"+s.instance, w.e.work, proxyCore, []string{"GOMAXPROCS=1"},
			filepath.Join(w.e.bin, "weft-proxy"), "--instance", s.instance, "--controller", w.e.ctl.Addr,
			"--trust-bundle", w.e.ctl.bundle, "--admin", admin, "--data-dir", dd)
		if err != nil {
			return "", err
		}
		w.procs = append(w.procs, p)
		if err := waitReady(ctx, "http://"+admin+"/ready", p); err != nil {
			return "", err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !w.e.ctl.acked("server-1") || !w.e.ctl.acked("client-1") {
		if time.Now().After(deadline) {
			return "", errors.New("the sidecars did not acknowledge their configurations within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	entry := fmt.Sprintf("127.0.0.1:%d", ports[2])
	return entry, waitTCP(entry, w.procs, 10*time.Second)
}

func waitReady(ctx context.Context, url string, p *proc) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if e := p.exited(); e != nil {
			return e
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 15s (last: %v)", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *weftCand) pids() []int { return pidsOf(w.procs) }
func (w *weftCand) stop()       { stopAll(&w.procs) }
