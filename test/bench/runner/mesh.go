package runner

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/compile"
	wcontroller "github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

// TrustDomain of the benchmark mesh.
const TrustDomain = "bench.weft"

// leaf is one certificate with its key and roots, as files.
type leaf struct {
	Dir                       string
	CertFile, KeyFile, Roots  string
	Combined                  string // cert then key, for HAProxy's crt
	certPEM, keyPEM, rootsPEM []byte
}

// issueLeaf makes a key, has the CA sign it for ns/svc, and writes the
// files HAProxy and weft-proxy (its data directory layout) read.
func issueLeaf(c *ca.CA, dir, service string) (*leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("making CSR: %w", err)
	}
	chain, _, err := c.SignCSR(csr, spiffe.Identity{TrustDomain: TrustDomain, Namespace: "default", Service: service})
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	l := &leaf{Dir: dir, certPEM: chain, keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), rootsPEM: c.RootsPEM()}
	l.CertFile, l.KeyFile, l.Roots, l.Combined = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "roots.pem"), filepath.Join(dir, "combined.pem")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for f, b := range map[string][]byte{l.CertFile: l.certPEM, l.KeyFile: l.keyPEM, l.Roots: l.rootsPEM, l.Combined: append(append([]byte{}, l.certPEM...), l.keyPEM...)} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f, err)
		}
	}
	return l, nil
}

// dataDir writes a weft-proxy data directory holding l for instance, so
// the sidecar starts with exactly these certificates (the ones HAProxy
// gets) instead of joining for new ones.
func (l *leaf) dataDir(dir, instance string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"cert.pem": l.certPEM, "key.pem": l.keyPEM, "roots.pem": l.rootsPEM, "instance": []byte(instance + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// controller is core/meshserver serving on loopback, fed by a registry
// and a policy built here, compiled with core/compile: the controller's
// own path from registry to stream, without the HCL and plugin front end.
type controller struct {
	Addr    string
	CA      *ca.CA
	srv     *meshserver.Server
	grpc    *grpc.Server
	reg     *registry.Registry
	bundle  string
	Version func(instance string) uint64
}

func startController(caDir string) (*controller, error) {
	c, err := ca.LoadOrCreate(caDir)
	if err != nil {
		return nil, err
	}
	reg := registry.New()
	srv := meshserver.New(meshserver.Options{
		CA: c, Join: ca.NewJoinVerifier(c.JoinSecret()), Workloads: wcontroller.Static(reg, TrustDomain),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	cert, err := c.ServerCertificate(spiffe.Identity{TrustDomain: TrustDomain, Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService}, []string{"127.0.0.1"})
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(srv.TLSConfig(cert))))
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go g.Serve(ln)
	bundle := filepath.Join(caDir, "bundle.pem")
	if err := os.WriteFile(bundle, c.RootsPEM(), 0o600); err != nil {
		return nil, err
	}
	ctl := &controller{Addr: ln.Addr().String(), CA: c, srv: srv, grpc: g, reg: reg, bundle: bundle}
	ctl.Version = func(id string) uint64 { _, v, _ := srv.Config(id); return v }
	return ctl, nil
}

func (c *controller) stop() { c.grpc.Stop() }

// acked reports whether the sidecar of instance acknowledged its current
// configuration.
func (c *controller) acked(instance string) bool {
	v := c.Version(instance)
	for _, s := range c.srv.Status() {
		if s.Instance == instance && s.AckedVersion == v && v != 0 {
			return true
		}
	}
	return false
}

// benchMesh is the topology's mesh: bench-client calls bench-server, and
// also has an upstream bench-bulk with bulkEndpoints endpoints that is
// never called (it makes the config the size of a real one).
type benchMesh struct {
	Protocol                    policy.Protocol
	ServerMesh, ServerApp       int
	ClientMesh, ClientUpstream  int
	BulkUpstream, BulkEndpoints int
	Tracing                     *policy.Tracing // nil: off
	// Gateway, when set, makes bench-client an ingress gateway whose
	// https listener (this TLS, on ClientUpstream) routes to bench-server.
	Gateway *policy.GatewayListenerTLS
}

func (m benchMesh) apply(c *controller) {
	ins := []model.Instance{
		{ID: "server-1", Service: "bench-server", Address: "127.0.0.1", Ports: map[string]int{model.PortApp: m.ServerApp, model.PortMesh: m.ServerMesh}, Health: model.HealthPassing},
		{ID: "client-1", Service: "bench-client", Address: "127.0.0.1", Ports: map[string]int{model.PortApp: 9, model.PortMesh: m.ClientMesh}, Health: model.HealthPassing},
	}
	for i := range m.BulkEndpoints {
		// Never dialed: addresses in 127.0.0.0/8, ports that nothing uses.
		ins = append(ins, model.Instance{ID: "bulk-" + strconv.Itoa(i), Service: "bench-bulk", Address: fmt.Sprintf("127.0.%d.%d", 10+i/250, 1+i%250),
			Ports: map[string]int{model.PortApp: 9, model.PortMesh: 9}, Health: model.HealthPassing})
	}
	for i := range ins {
		ins[i].Workload = map[string]string{model.WorkloadScheduler: "local", "name": ins[i].Service}
	}
	c.reg.Update(model.Snapshot{Adapter: "bench", Instances: ins})
	bind := func(name string) []policy.Binding {
		return []policy.Binding{{Scheduler: "local", Match: map[string]string{"name": name}}}
	}
	ups := []policy.Upstream{{Service: "bench-server", LocalPort: m.ClientUpstream, LB: policy.RoundRobin}}
	if m.BulkEndpoints > 0 {
		ups = append(ups, policy.Upstream{Service: "bench-bulk", LocalPort: m.BulkUpstream, LB: policy.RoundRobin})
	}
	p := &policy.Policy{
		Mesh: policy.Mesh{TrustDomain: TrustDomain, DefaultAction: policy.Deny, Tracing: m.Tracing},
		Services: map[string]policy.Service{
			"bench-server": {Name: "bench-server", Protocol: m.Protocol, Bindings: bind("bench-server")},
			"bench-client": {Name: "bench-client", Protocol: policy.TCP, Upstreams: ups, Bindings: bind("bench-client")},
			"bench-bulk":   {Name: "bench-bulk", Protocol: policy.TCP, Bindings: bind("bench-bulk")},
		},
		Intentions: []policy.Intention{{Source: "bench-client", Destination: "bench-server", Action: policy.Allow}},
	}
	if m.Gateway != nil {
		p.Gateways = map[string]policy.Gateway{"bench": {Name: "bench", Service: "bench-client", Listeners: []policy.GatewayListener{{
			Name: "https", Port: m.ClientUpstream, Protocol: policy.GatewayHTTPS, TLS: m.Gateway,
			Routes: []policy.GatewayRoute{{Name: "all", Service: "bench-server"}},
		}}}}
	}
	c.srv.Update(compile.Compile(p, c.reg.Entries()))
}
