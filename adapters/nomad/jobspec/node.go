package jobspec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Proxy modes of the stanza's proxy_mode (docs/deployment-models.md).
const (
	ProxyModeInstance = "instance" // a sidecar task per allocation (the default)
	ProxyModeNode     = "node"     // the node proxy of the allocation's node
)

// TagProxyModeNode is the service tag by which a node-mode group's
// instances opt in to the node proxy (adapters/nomad TagProxyMode).
const TagProxyModeNode = "weft_proxy_mode=node"

// NodeModeComment is written into a node-mode group, where its sidecar
// task would be.
const NodeModeComment = "Served by the node proxy (proxy_mode = \"node\"): run its system job, weft nomad render --node-proxy."

// decodeProxyMode settles st.ProxyMode from the stanza's proxy_mode and
// the policy's (def.ProxyMode): either alone decides; both must agree.
func decodeProxyMode(st *Stanza, blk *hclsyntax.Block, a *hcl.Attribute, def Defaults) hcl.Diagnostics {
	st.ProxyMode = ProxyModeInstance
	var diags hcl.Diagnostics
	set := false
	if a != nil {
		diags = append(diags, str(a, &st.ProxyMode)...)
		set = !diags.HasErrors()
		switch st.ProxyMode {
		case ProxyModeInstance, ProxyModeNode:
		case "application":
			diags = append(diags, attrDiag(a, "Unsupported proxy_mode",
				"proxy_mode = \"application\": application proxies run on the local adapter only; on Nomad use \"node\" (the node proxy) or \"instance\" (a sidecar task, the default)."))
		default:
			diags = append(diags, attrDiag(a, "Unsupported proxy_mode",
				"proxy_mode = %q: use \"instance\" (a sidecar task per allocation, the default) or \"node\" (the node proxy of each allocation's node).", st.ProxyMode))
		}
		if diags.HasErrors() {
			st.ProxyMode = ProxyModeInstance
			return diags
		}
	}
	pm := ""
	if def.ProxyMode != nil {
		pm = def.ProxyMode(st.Service)
	}
	if pm == "" {
		return diags
	}
	subj := blk.DefRange().Ptr()
	if a != nil {
		subj = a.Expr.Range().Ptr()
	}
	switch {
	case set && pm != st.ProxyMode:
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "proxy_mode conflicts with the policy",
			Detail:  fmt.Sprintf("The weft block says proxy_mode = %q but the policy puts service %q in %q mode, and the controller would refuse the proxy that does not match. Make the two agree (or remove proxy_mode here: the policy's mode is rendered).", st.ProxyMode, st.Service, pm),
			Subject: subj})
	case pm == ProxyModeInstance || pm == ProxyModeNode:
		st.ProxyMode = pm
	default:
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported proxy_mode in the policy",
			Detail:  fmt.Sprintf("The policy puts service %q in %q mode, which Nomad jobs cannot have yet (application proxies run on the local adapter only). Use \"node\" or \"instance\" for it in the policy.", st.Service, pm),
			Subject: subj})
	}
	return diags
}

// nodeUserService makes a service block the user wrote for a node-mode
// service carry the opt-in tag: added when it has no tags, an error when
// its tags lack it (they may be any expression).
func nodeUserService(st *Stanza, svc *hclsyntax.Block, wgroup *hclwrite.Block) hcl.Diagnostics {
	if a, ok := svc.Body.Attributes["tags"]; ok {
		v, d := value(a.Expr)
		if !d.HasErrors() && (v.Type().IsTupleType() || v.Type().IsListType()) && !v.IsNull() {
			for it := v.ElementIterator(); it.Next(); {
				if _, e := it.Element(); e.Type() == cty.String && !e.IsNull() && e.AsString() == TagProxyModeNode {
					return nil
				}
			}
		}
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Service tag needed",
			Detail:  fmt.Sprintf("In node mode the node proxy serves the instances whose service carries the tag %s: add %q to the tags of service %q, or drop this service block and let the weft block write it.", TagProxyModeNode, TagProxyModeNode, st.Service),
			Subject: a.SrcRange.Ptr()}}
	}
	for _, ws := range wblocksOf(wgroup.Body(), "service") {
		a := ws.Body().GetAttribute("name")
		if a != nil && strings.TrimSpace(string(a.Expr().BuildTokens(nil).Bytes())) == strconv.Quote(st.Service) {
			ws.Body().SetAttributeValue("tags", cty.ListVal([]cty.Value{cty.StringVal(TagProxyModeNode)}))
		}
	}
	return nil
}

// NodeProxy describes the node proxy's system job (NodeProxyJob).
type NodeProxy struct {
	// Job is the job's name; default "weft-node-proxy".
	Job         string
	Datacenters []string // default: Nomad's
	Command     string   // weft-proxy on the client nodes; default "weft-proxy"
	Driver      string   // raw_exec (the default) or exec
	Controllers []string // the controller's sidecar API, host:port; required
	TrustBundle string   // the controller CA's roots on the client nodes; required
	// DiscoverInterval is how often it asks the controller which
	// instances to serve; 0: weft-proxy's default (2s).
	DiscoverInterval time.Duration
	CPU, MemoryMB    int // defaults 200 and 128
}

// NodeProxyJob is the node proxy's system job: one weft-proxy --node per
// client node, marked weft_proxy = "node" (the job meta the controller
// requires of a node proxy's workload identity), joining with its task's
// workload identity. It serves the node-mode instances the controller
// lists for its node, and adds and removes them without restarting
// (docs/deployment-models.md). Errors say what is missing.
func NodeProxyJob(np NodeProxy) ([]byte, error) {
	if np.Job == "" {
		np.Job = "weft-node-proxy"
	}
	if np.Command == "" {
		np.Command = "weft-proxy"
	}
	if np.Driver == "" {
		np.Driver = "raw_exec"
	}
	if np.CPU == 0 {
		np.CPU = 200
	}
	if np.MemoryMB == 0 {
		np.MemoryMB = 128
	}
	switch {
	case len(np.Controllers) == 0:
		return nil, fmt.Errorf("the node proxy needs the controller's sidecar API: pass --controller HOST:PORT (each replica)")
	case np.TrustBundle == "":
		return nil, fmt.Errorf("the node proxy verifies the controller with the controller CA's root certificate, a file on every client node: pass --trust-bundle PATH")
	case np.Driver != "raw_exec" && np.Driver != "exec":
		return nil, fmt.Errorf("the node proxy runs with raw_exec or exec (a binary on the client node), not %q", np.Driver)
	case !validJobName(np.Job):
		return nil, fmt.Errorf("job name %q: use letters, digits, dashes and underscores", np.Job)
	}
	args := []string{"--node", "${node.unique.name}", "--credential-adapter", "nomad", "--credential-env", "NOMAD_TOKEN"}
	for _, c := range np.Controllers {
		args = append(args, "--controller", c)
	}
	args = append(args, "--trust-bundle", np.TrustBundle)
	if np.DiscoverInterval > 0 {
		args = append(args, "--discover-interval", np.DiscoverInterval.String())
	}
	// Written once every instance is served: an upgrade run as a second
	// system job waits for it before the old job stops
	// (docs/deployment-models.md, "Upgrades and failure").
	args = append(args, "--ready-file", "${NOMAD_TASK_DIR}/ready")
	var b strings.Builder
	b.WriteString("# The weft node proxy (docs/deployment-models.md): one weft-proxy per client\n")
	b.WriteString("# node, serving the node-mode instances Nomad placed there (their service\n")
	b.WriteString("# carries the tag " + TagProxyModeNode + "), each with its own identity.\n")
	b.WriteString("# Generated by weft nomad render --node-proxy.\n")
	fmt.Fprintf(&b, "job %q {\n  type = \"system\"\n", np.Job)
	if len(np.Datacenters) > 0 {
		fmt.Fprintf(&b, "  datacenters = [%s]\n", quoteAll(np.Datacenters))
	}
	b.WriteString("\n  # The marker the controller requires of a node proxy's identity.\n")
	b.WriteString("  meta {\n    weft_proxy = \"node\"\n  }\n\n")
	fmt.Fprintf(&b, "  group \"proxy\" {\n    task %q {\n      driver = %q\n\n", ProxyTask, np.Driver)
	b.WriteString("      identity {\n        env = true\n      }\n\n")
	fmt.Fprintf(&b, "      config {\n        command = %q\n        args    = [%s]\n      }\n\n", np.Command, quoteAll(args))
	b.WriteString("      # More than the proxy's drain (5s): a stop closes its listeners at\n      # once and lets open connections finish.\n")
	fmt.Fprintf(&b, "      kill_timeout = \"10s\"\n\n      resources {\n        cpu    = %d\n        memory = %d\n      }\n    }\n  }\n}\n", np.CPU, np.MemoryMB)
	out := hclwrite.Format([]byte(b.String()))
	if _, d := hclsyntax.ParseConfig(out, "node-proxy.nomad.hcl", hcl.InitialPos); d.HasErrors() {
		return nil, fmt.Errorf("rendering the node proxy's job: %w", d) // a value the quoting did not cover
	}
	return out, nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func validJobName(s string) bool {
	return s != "" && len(s) <= 128 && !slices.ContainsFunc([]rune(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}
