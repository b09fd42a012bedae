package local

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
)

// Shared proxies: one weft-proxy process serving several instances
// (docs/deployment-models.md). The node proxy serves every instance of a
// service with proxy_mode = "node"; an application proxy serves every
// instance of one application (namespace and service) with proxy_mode =
// "application". Both run as
//
//	<ProxyBinary> --node <node> --serve-file <DataDir>/proxy/<slot>.serve.json \
//	  --discover-interval 250ms --controller <addr>... \
//	  --trust-bundle <DataDir>/trust-bundle.pem --data-dir <DataDir>/proxy/<slot>
//
// The serve file (writeServeFile) lists the instances it serves, each
// with its admin address (<address>:15000) and identity, and a token
// minted when the file is written: for the node proxy a node token, which
// admits it, once per instance, for the instances this adapter places on
// its node; for an application proxy an application token, a node token
// narrowed to its service and namespace, which admits it for that
// application's instances on the node and for no other's. The instances
// keep their addresses and ports: the shared proxy listens on each one's
// mesh port and, for its upstreams, on its address, as its sidecar would.
//
// The command line and environment name no instance, so an instance that
// joins or leaves the shared proxy, or changes its identity, does not
// restart it: the runner writes the serve file again (with a fresh token)
// and the proxy, which reads it every 250ms, starts or stops that
// instance alone; the others' listeners and connections stay. What still
// restarts it: the instance whose group it runs with (below) leaving it,
// a change of its own command line (the controllers, the proxy binary),
// and an adapter restart (it is not adopted: one of an earlier run is
// stopped).
//
// Under the guard (guard.go) a shared proxy runs with a group of its own:
// the sidecar group of the first instance it serves (instanceSpec.ProxyAddr),
// which no sidecar holds since that instance has none; the group stays
// while that instance is served by it (planInput.PrevShared), so that
// instances added before it in the file do not change it. Each instance it
// serves admits that group to its app port in place of a sidecar's, so an
// application proxy reaches its own application's apps and no other's.

// OptionNode names the adapter's node (model.Instance.Node).
const OptionNode = "node"

// nodeSlotID names the node proxy in logs, its log file and data directory.
const nodeSlotID = "_node"

// sharedSlotID names the shared proxy of an instance ("" for a sidecar):
// "_node", or "_app.<namespace>.<service>" for its application's proxy.
func (s instanceSpec) sharedSlotID() string {
	switch s.ProxyMode {
	case ProxyModeNode:
		return nodeSlotID
	case ProxyModeApplication:
		return "_app." + s.Namespace + "." + s.Service
	}
	return ""
}

// defaultNode is the host name, or "local" without one.
func defaultNode() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "local"
}

// validNode reports whether a node name can go on a command line and in a
// token: 1 to 253 printable ASCII characters, no space, no '='.
func validNode(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c > '~' || c == '=' {
			return false
		}
	}
	return true
}

// serveFileInterval is how often a shared proxy reads its serve file.
const serveFileInterval = 250 * time.Millisecond

// withSharedProxies gives every node-mode and application-mode spec its
// shared proxy's process spec, and the address whose group it runs with:
// the one it ran with (in.PrevShared) while that instance is still among
// its instances, else its first instance's.
func withSharedProxies(specs []instanceSpec, in planInput) {
	type group struct {
		first instanceSpec
		addrs map[string]bool
	}
	groups := map[string]*group{}
	var order []string
	for _, s := range specs {
		id := s.sharedSlotID()
		if id == "" {
			continue
		}
		g := groups[id]
		if g == nil {
			g = &group{first: s, addrs: map[string]bool{}}
			groups[id] = g
			order = append(order, id)
		}
		g.addrs[s.Address] = true
	}
	l := layout{in.Mesh.DataDir}
	procs := map[string]procSpec{}
	for _, id := range order {
		g := groups[id]
		// --reuse-port=false: the adapter's apps run as its own user and
		// are kept apart by group (guard.go), and SO_REUSEPORT admits any
		// socket of the same user to a port's group: an app could bind the
		// proxy's ports beside it and take a share of its connections
		// (other apps' plaintext requests among them). The adapter
		// replaces a shared proxy by stop and start: the option gains it
		// nothing.
		argv := []string{in.ProxyPath, "--node", in.Node, "--serve-file", l.serveFile(id), "--discover-interval", serveFileInterval.String(), "--reuse-port=false"}
		for _, c := range in.Mesh.ControllerAddrs {
			argv = append(argv, "--controller", c)
		}
		argv = append(argv, "--trust-bundle", l.trustBundle(), "--data-dir", l.proxyDir(id))
		env := []string{"WEFT_NODE=" + in.Node}
		if g.first.ProxyMode == ProxyModeApplication {
			env = append(env, "WEFT_APPLICATION="+g.first.Namespace+"/"+g.first.Service)
		}
		procs[id] = procSpec{Argv: argv, Env: env, Log: l.log(id, "proxy")}
	}
	for i := range specs {
		if id := specs[i].sharedSlotID(); id != "" {
			specs[i].Proxy = procs[id]
			specs[i].ProxyAddr = groups[id].first.Address
			if prev := in.PrevShared[id]; groups[id].addrs[prev] {
				specs[i].ProxyAddr = prev
			}
		}
	}
}

// serveItems lists what the shared proxy of slot id serves, from specs,
// as its serve file has them.
func serveItems(specs []instanceSpec, id string) []serveItem {
	var out []serveItem
	for _, s := range specs {
		if s.sharedSlotID() == id {
			out = append(out, serveItem{ID: s.ID, Admin: net.JoinHostPort(s.Address, strconv.Itoa(adminPort)), Identity: s.Namespace + "/" + s.Service})
		}
	}
	return out
}

// serveItem is one instance in a shared proxy's serve file.
type serveItem struct {
	ID       string `json:"id"`
	Admin    string `json:"admin"`
	Identity string `json:"identity"`
}

// serveFile is what weft-proxy --serve-file reads (cmd/weft-proxy
// servefile.go): the token its instances join with, and the instances.
type serveFile struct {
	Token     string      `json:"token"`
	Instances []serveItem `json:"instances"`
}

// writeServeFile writes a shared proxy's serve file atomically (a
// temporary file renamed over it: the proxy never reads half of one),
// readable by the adapter's user only: it holds a token.
func writeServeFile(path string, sf serveFile) error {
	if sf.Instances == nil {
		sf.Instances = []serveItem{}
	}
	b, err := json.Marshal(sf)
	if err != nil {
		return fmt.Errorf("encoding the serve file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the serve file's directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".serve-*")
	if err != nil {
		return fmt.Errorf("writing the serve file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the serve file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the serve file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the serve file: %w", err)
	}
	return nil
}

// sharedSlotSpec is the instance a shared proxy's slot stands for: its
// slot ID, its mode, its application (for an application proxy), and the
// address whose group it runs with.
func sharedSlotSpec(s instanceSpec) instanceSpec {
	return instanceSpec{ID: s.sharedSlotID(), ProxyMode: s.ProxyMode, Service: s.Service, Namespace: s.Namespace, Node: s.Node, Address: s.ProxyAddr, ProxyAddr: s.ProxyAddr}
}

// mintNodeToken mints the token a shared proxy presents, once per
// instance, to the controller: a node token for the node proxy, an
// application token for an application proxy (slot is sharedSlotSpec's).
func (a *Adapter) mintNodeToken(slot instanceSpec) (string, error) {
	a.mu.Lock()
	mesh, node := a.cfg.req.Mesh, a.cfg.node
	a.mu.Unlock()
	if slot.ProxyMode == ProxyModeApplication {
		return sdk.MintApplicationToken(mesh, Name, node, slot.Namespace, slot.Service, nodeTokenTTL)
	}
	return sdk.MintNodeToken(mesh, Name, node, nodeTokenTTL)
}

// nodeTokenTTL bounds a node token's life: long enough for the node
// proxy to join every instance after a start, with retries while the
// controller waits for its first snapshot.
const nodeTokenTTL = 10 * time.Minute

// sharedProxySpecs returns the shared proxies specs need, by slot ID:
// for each, the first instance it serves (its slot is sharedSlotSpec of
// it, its process spec its Proxy).
func sharedProxySpecs(specs []instanceSpec) map[string]instanceSpec {
	out := map[string]instanceSpec{}
	for _, s := range specs {
		if id := s.sharedSlotID(); id != "" {
			if _, ok := out[id]; !ok {
				out[id] = s
			}
		}
	}
	return out
}

// distinctProcs drops the repeats of a pid from ps.
func distinctProcs(ps []stateProc) []stateProc {
	seen := map[int]bool{}
	out := ps[:0]
	for _, p := range ps {
		if seen[p.PID] {
			continue
		}
		seen[p.PID] = true
		out = append(out, p)
	}
	return out
}
