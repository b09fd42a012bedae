package local

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
)

// The node proxy: one weft-proxy process serving every instance of a
// service with proxy_mode = "node" (docs/deployment-models.md):
//
//	<ProxyBinary> --node <node> --serve <id>=<address>:15000 ... \
//	  --controller <addr>... --trust-bundle <DataDir>/trust-bundle.pem \
//	  --data-dir <DataDir>/proxy/_node
//
// with a node token in WEFT_NODE_TOKEN, minted at every start: it admits
// the proxy, once per instance, for the instances this adapter places on
// its node and no others. The instances keep their addresses and ports: the
// node proxy listens on each one's mesh port and, for its upstreams, on its
// address, as its sidecar would. The node proxy's command line lists the
// instances, so adding or removing a node-mode instance restarts it (its
// instances' connections end then; the certificates stay in its data
// directory). It runs with the adapter's own group: the guard (guard.go)
// keys an instance's rules on its sidecar's group, so node-mode instances
// are left out of the guard and report isolation none, with a warning.

// OptionNode names the adapter's node (model.Instance.Node).
const OptionNode = "node"

// nodeSlotID names the node proxy in logs, its log file and data directory.
const nodeSlotID = "_node"

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

// withNodeProxy gives every node-mode spec the node proxy's process spec.
func withNodeProxy(specs []instanceSpec, in planInput) {
	var serve, identities []string
	for _, s := range specs {
		if s.ProxyMode == ProxyModeNode {
			serve = append(serve, s.ID+"="+net.JoinHostPort(s.Address, strconv.Itoa(adminPort)))
			identities = append(identities, s.ID+"="+s.Namespace+"/"+s.Service)
		}
	}
	if len(serve) == 0 {
		return
	}
	l := layout{in.Mesh.DataDir}
	argv := []string{in.ProxyPath, "--node", in.Node}
	for _, sv := range serve {
		argv = append(argv, "--serve", sv)
	}
	for _, c := range in.Mesh.ControllerAddrs {
		argv = append(argv, "--controller", c)
	}
	argv = append(argv, "--trust-bundle", l.trustBundle(), "--data-dir", l.proxyDir(nodeSlotID))
	// The identities are the node proxy's, as a sidecar's are its: when
	// one changes, the node proxy restarts and joins anew.
	p := procSpec{
		Argv: argv,
		Env:  []string{"WEFT_NODE=" + in.Node, "WEFT_NODE_IDENTITIES=" + strings.Join(identities, ",")},
		Log:  l.log(nodeSlotID, "proxy"),
	}
	for i := range specs {
		if specs[i].ProxyMode == ProxyModeNode {
			specs[i].Proxy = p
		}
	}
}

// nodeSpecs returns the node-mode instances' IDs, for a warning.
func nodeSpecs(specs []instanceSpec) []string {
	var ids []string
	for _, s := range specs {
		if s.ProxyMode == ProxyModeNode {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// nodeWarning says that node-mode instances are not guarded.
func nodeWarning(specs []instanceSpec, isolation string) []sdk.Diagnostic {
	ids := nodeSpecs(specs)
	if len(ids) == 0 || isolation != isolationGuard {
		return nil
	}
	return []sdk.Diagnostic{sdk.Warningf("Node-mode instances not guarded",
		"Instances %s are served by the node proxy (proxy_mode = \"node\"); the guard keys its rules on each sidecar's group and does not cover them yet, so their app and outbound ports are open to local processes (isolation none). Use proxy_mode = \"sidecar\" where that matters.",
		strings.Join(ids, ", "))}
}

// mintNodeToken mints the node token the node proxy presents, once per
// instance, to the controller.
func (a *Adapter) mintNodeToken() (string, error) {
	a.mu.Lock()
	mesh, node := a.cfg.req.Mesh, a.cfg.node
	a.mu.Unlock()
	return sdk.MintNodeToken(mesh, Name, node, nodeTokenTTL)
}

// nodeTokenTTL bounds a node token's life: long enough for the node
// proxy to join every instance after a start, with retries while the
// controller waits for its first snapshot.
const nodeTokenTTL = 10 * time.Minute

// nodeProxySpec returns the node proxy's process spec, and whether any
// instance is in node mode.
func nodeProxySpec(specs []instanceSpec) (procSpec, bool) {
	for _, s := range specs {
		if s.ProxyMode == ProxyModeNode {
			return s.Proxy, true
		}
	}
	return procSpec{}, false
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
