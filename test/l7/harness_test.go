package l7

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	policyhcl "github.com/weftmesh/weft/hcl"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/test/harness"
)

// wait bounds every wait in these tests.
const wait = 10 * time.Second

// inst describes one instance: its service, metadata and tags, and its
// application (nil: an instance with no app, a pure caller).
type inst struct {
	id   string
	svc  string
	meta map[string]string
	tags []string
	app  http.Handler
	h2c  bool // the app speaks h2c (http2, grpc)
	// serve, instead of app, starts the application on ln itself.
	serve func(ln net.Listener)
	// health, when set, hears the sidecar's reports of its app's health.
	health proxy.HealthReporter
}

type running struct {
	inst
	proxy   *proxy.Proxy
	log     *harness.SyncBuffer
	appAddr *net.TCPAddr
}

type mesh struct {
	t       *testing.T
	ca      *proxytest.CA
	insts   []*running
	version uint64
	entries []registry.Entry
}

// start runs every instance with its sidecar, compiles src against them
// and applies it.
func start(t *testing.T, src string, insts ...inst) *mesh {
	t.Helper()
	ca, err := proxytest.NewCA("weft.local")
	if err != nil {
		t.Fatal(err)
	}
	m := &mesh{t: t, ca: ca}
	for _, in := range insts {
		r := &running{inst: in, log: &harness.SyncBuffer{}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.appAddr = ln.Addr().(*net.TCPAddr)
		switch {
		case in.serve != nil:
			go in.serve(ln)
			t.Cleanup(func() { ln.Close() })
		case in.app != nil:
			srv := &http.Server{Handler: in.app}
			if in.h2c {
				srv.Protocols = new(http.Protocols)
				srv.Protocols.SetHTTP1(true)
				srv.Protocols.SetUnencryptedHTTP2(true)
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
		default:
			ln.Close()
		}
		r.proxy = proxy.New(proxy.Options{Log: r.log, DrainTimeout: 2 * time.Second, Health: in.health})
		cert, err := ca.Leaf("default", in.svc, proxytest.LeafOptions{})
		if err != nil {
			t.Fatal(err)
		}
		creds, err := proxy.NewCredentials(cert, ca.RootPEM)
		if err != nil {
			t.Fatal(err)
		}
		r.proxy.SetCredentials(creds)
		m.insts = append(m.insts, r)
	}
	// Close every sidecar at once: a caller closing its pooled connections
	// lets the callee's graceful shutdown finish without waiting.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, r := range m.insts {
			wg.Go(func() { r.proxy.Close() })
		}
		wg.Wait()
		if t.Failed() {
			for _, r := range m.insts {
				t.Logf("log of sidecar %s:\n%s", r.id, r.log)
			}
		}
	})
	// First bind every inbound on a free port, then tell the callers.
	m.applyPolicy(src, true)
	m.apply(src)
	return m
}

// apply compiles src against the instances and applies a new version to
// every sidecar.
func (m *mesh) apply(src string) {
	m.t.Helper()
	m.applyPolicy(src, false)
}

// applyPolicy is apply; with bindOnly the configs lose their upstreams
// (and a gateway's listeners),
// so that every inbound gets a port before callers are told about it.
func (m *mesh) applyPolicy(src string, bindOnly bool) {
	m.t.Helper()
	p := load(m.t, src)
	var entries []registry.Entry
	for _, r := range m.insts {
		ports := map[string]int{model.PortApp: r.appAddr.Port, model.PortMesh: 0}
		if a := r.proxy.Addr(proxy.KeyInbound); a != nil {
			ports[model.PortMesh] = a.(*net.TCPAddr).Port
		}
		for _, u := range p.Services[r.svc].Upstreams {
			ports[compile.UpstreamPortPrefix+u.Service] = 0
			if a := r.proxy.Addr(proxy.KeyUpstream(u.Service)); a != nil {
				ports[compile.UpstreamPortPrefix+u.Service] = a.(*net.TCPAddr).Port
			}
		}
		entries = append(entries, registry.Entry{Adapter: "test", Instance: model.Instance{
			ID: r.id, Service: r.svc, Address: "127.0.0.1", Ports: ports, Meta: r.meta, Tags: r.tags, Health: model.HealthPassing,
			// The policies bind each service to the local workload named
			// after it: binding "local" { name = "<service>" }.
			Workload: map[string]string{model.WorkloadScheduler: "local", "name": r.svc},
		}})
	}
	m.entries = entries
	cfgs := compile.Compile(p, entries)
	m.version++
	for _, r := range m.insts {
		if bindOnly {
			cfgs[r.id].Upstreams = nil
			cfgs[r.id].Gateway = nil // its routes' upstreams too
		}
		if err := r.proxy.Apply(m.version, cfgs[r.id]); err != nil {
			m.t.Fatalf("applying version %d to %s: %v", m.version, r.id, err)
		}
	}
}

func load(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, diags, files := policyhcl.LoadSources(map[string][]byte{"policy.hcl": []byte(src)})
	if diags.HasErrors() {
		var buf bytes.Buffer
		policyhcl.WriteDiagnostics(&buf, diags, files, false)
		t.Fatalf("policy:\n%s", buf.String())
	}
	return p
}

func (m *mesh) get(id string) *running {
	for _, r := range m.insts {
		if r.id == id {
			return r
		}
	}
	m.t.Fatalf("no instance %s", id)
	return nil
}

// url is where instance id's app reaches upstream svc, with path.
func (m *mesh) url(id, svc, path string) string {
	a := m.get(id).proxy.Addr(proxy.KeyUpstream(svc))
	if a == nil {
		m.t.Fatalf("instance %s has no upstream %s", id, svc)
	}
	return "http://" + a.String() + path
}

// client is an HTTP/1.1 client whose idle connections close at the end of
// the test, before the sidecars drain.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}
}

// do sends a request and returns the status, the body and the response
// headers.
func do(t *testing.T, c *http.Client, method, url string, hdr http.Header) (int, string, http.Header) {
	t.Helper()
	code, body, h, err := try(c, method, url, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return code, body, h
}

func try(c *http.Client, method, url string, hdr http.Header) (int, string, http.Header, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return harness.Do(c, req)
}

// named answers with its name and the request it saw.
func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", name)
		var hs []string
		for k := range r.Header {
			hs = append(hs, k)
		}
		w.Header().Set("X-Seen-Headers", strings.Join(hs, ","))
		w.Header().Set("Server", "app")
		fmt.Fprint(w, name)
	})
}

// buildBinaries builds weft, weft-proxy, the demo app and the extra
// binaries (name: package, as for harness.MeshBinaries) into a directory
// removed after the test, and returns it.
func buildBinaries(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir, cleanup, err := harness.BuildBinaries(harness.MeshBinaries(extra))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return dir
}

// controllerMesh is a running `weft controller` with the local adapter
// (harness.StartLocalMesh), and its status once the mesh had converged.
type controllerMesh struct {
	*harness.LocalMesh
	last *harness.Status
}

// startControllerMesh runs the controller from bin on policy and workloads
// (written under dir) with the local adapter, its instances from
// firstAddress on and unguarded (the test calls through a sidecar as its
// app), and waits until want instances each have a sidecar that
// acknowledged its configuration. At the end of the test it stops the
// controller (SIGINT; an error if it outlives 30s) and, if the test
// failed, logs the controller's and the sidecars' logs.
func startControllerMesh(t *testing.T, bin, dir, policy, workloads, firstAddress string, want int) *controllerMesh {
	t.Helper()
	// Registered first, so it runs after the controller has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			for id, log := range proxyLogs(filepath.Join(dir, "data")) {
				t.Logf("log of sidecar %s:\n%s", id, log)
			}
		}
	})
	cm := &controllerMesh{LocalMesh: harness.StartLocalMesh(t, bin, dir, policy, workloads, firstAddress,
		"--adapter-option", "local.isolation=none")}
	cm.last = cm.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(want))
	return cm
}

// address is the address of the first instance of service svc.
func (cm *controllerMesh) address(t *testing.T, svc string) string {
	t.Helper()
	if a := cm.last.Address(svc); a != "" {
		return a
	}
	t.Fatalf("no instance of %s in the controller's status", svc)
	return ""
}

// proxyLogs reads every sidecar's log (<id>.proxy.log, written by the
// local adapter under the data directory), by instance ID.
func proxyLogs(dataDir string) map[string]string {
	logs := map[string]string{}
	filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".proxy.log") {
			if b, err := os.ReadFile(path); err == nil {
				logs[strings.TrimSuffix(filepath.Base(path), ".proxy.log")] = string(b)
			}
		}
		return nil
	})
	return logs
}
