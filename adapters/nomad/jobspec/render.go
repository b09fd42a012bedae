package jobspec

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/weftmesh/weft/hcl/hcllimit"
)

// Defaults fill what a stanza leaves out, from the command line.
type Defaults struct {
	ProxyCommand string   // default "weft-proxy"
	Driver       string   // default "raw_exec"
	Controllers  []string // the controller's sidecar API, host:port
	TrustBundle  string   // the controller CA's roots, on the client nodes
	// ProxyMode is the policy's proxy mode of a service (its proxy_mode,
	// else the mesh's default_proxy_mode; "": policy says nothing), from
	// `weft nomad render --policy DIR`: a stanza's service with one is
	// rendered in that mode, and a stanza's proxy_mode must agree with it.
	// Nil: the stanzas decide.
	ProxyMode func(service string) string
}

// Stanza is one decoded weft block.
type Stanza struct {
	Service string
	Port    string
	// NetworkMode is "bridge" (the default: the group gets its own network
	// namespace and only the mesh port is published) or "host" (the
	// opt-out: no isolation).
	NetworkMode string
	// AppPort is the app's port inside the allocation (bridge mode): the
	// app_port attribute, else the to of the app's port block, else
	// DefaultAppPort.
	AppPort     int
	appPortAttr *hcl.Attribute
	Upstreams   []Upstream
	Command     string
	Driver      string
	Controllers []string
	TrustBundle string
	CPU         int
	MemoryMB    int
	KillTimeout string
	// ProxyMode is ProxyModeInstance (the default: a sidecar task) or
	// ProxyModeNode (no sidecar task: the node proxy serves the group's
	// instances; node.go).
	ProxyMode string
}

// Upstream is one upstream of a stanza.
type Upstream struct {
	Service   string
	LocalPort int // 0: a port Nomad allocates
}

// ProxyTask is the name of the sidecar task Render adds.
const ProxyTask = "weft-proxy"

// ShutdownDelay is the group's shutdown_delay Render sets when the group
// has none.
const ShutdownDelay = "2s"

// Network modes of the stanza's network_mode.
const (
	ModeBridge = "bridge"
	ModeHost   = "host"
)

// Ports inside an allocation's network namespace (bridge mode): the
// sidecar's inbound (the only published port), its admin API (loopback
// only) and the app's default.
const (
	MeshPortInside  = 15001
	AdminPortInside = 15000
	DefaultAppPort  = 8080
)

// TagUpstreamPrefix starts the service tag that carries an upstream's
// local port in bridge mode (weft_upstream_user_db=9003): no port block
// can, since every port block of a bridge network is published on the
// host. The nomad adapter reads it.
const TagUpstreamPrefix = "weft_upstream_"

// IsolationOffWarning heads the comment Render writes into a group that
// opts out of bridge networking.
const IsolationOffWarning = "WARNING: weft isolation is OFF for this group"

// Render expands every weft stanza of the job file src (named filename in
// diagnostics). With error diagnostics the output is nil.
func Render(filename string, src []byte, def Defaults) ([]byte, *hcl.File, hcl.Diagnostics) {
	// A file that could exhaust the parser is not parsed.
	if diags := hcllimit.Check(filename, src, jobLimits); diags.HasErrors() {
		return nil, &hcl.File{Bytes: src}, diags
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, file, diags
	}
	wf, wdiags := hclwrite.ParseConfig(src, filename, hcl.InitialPos)
	if wdiags.HasErrors() {
		return nil, file, append(diags, wdiags...)
	}
	body := file.Body.(*hclsyntax.Body)
	changed := false
	for ji, job := range blocksOf(body, "job") {
		wjob := wblocksOf(wf.Body(), "job")[ji]
		diags = append(diags, misplaced(job.Body, "job")...)
		for gi, group := range blocksOf(job.Body, "group") {
			wgroup := wblocksOf(wjob.Body(), "group")[gi]
			for _, task := range blocksOf(group.Body, "task") {
				diags = append(diags, misplaced(task.Body, "task")...)
			}
			stanzas := blocksOf(group.Body, "weft")
			if len(stanzas) == 0 {
				continue
			}
			if len(stanzas) > 1 {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError, Summary: "Duplicate weft block",
					Detail:  fmt.Sprintf("Group %q has more than one weft block; a group has one sidecar, described by one weft block.", label(group)),
					Subject: stanzas[1].DefRange().Ptr(),
				})
				continue
			}
			st, d := decode(stanzas[0], label(group), def)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			diags = append(diags, expand(st, group, wgroup, stanzas[0])...)
			changed = true
		}
	}
	if diags.HasErrors() {
		return nil, file, diags
	}
	if !changed {
		return src, file, diags
	}
	return hclwrite.Format(wf.Bytes()), file, diags
}

func blocksOf(b *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, blk := range b.Blocks {
		if blk.Type == typ {
			out = append(out, blk)
		}
	}
	return out
}

func wblocksOf(b *hclwrite.Body, typ string) []*hclwrite.Block {
	var out []*hclwrite.Block
	for _, blk := range b.Blocks() {
		if blk.Type() == typ {
			out = append(out, blk)
		}
	}
	return out
}

func label(b *hclsyntax.Block) string {
	if len(b.Labels) > 0 {
		return b.Labels[0]
	}
	return ""
}

// misplaced reports weft blocks directly in a job or a task.
func misplaced(b *hclsyntax.Body, where string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, w := range blocksOf(b, "weft") {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "weft block outside a group",
			Detail:  fmt.Sprintf("A weft block belongs inside a group (the sidecar serves the group's allocations), not directly in a %s. Move it into the group.", where),
			Subject: w.DefRange().Ptr(),
		})
	}
	return diags
}

var stanzaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "service"}, {Name: "port"}, {Name: "network_mode"}, {Name: "app_port"}, {Name: "proxy_mode"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "upstream", LabelNames: []string{"service"}}, {Type: "sidecar"}},
}

var upstreamSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "local_port"}}}

var sidecarSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "command"}, {Name: "driver"}, {Name: "controller"}, {Name: "trust_bundle"},
	{Name: "cpu"}, {Name: "memory"}, {Name: "kill_timeout"},
}}

func decode(blk *hclsyntax.Block, group string, def Defaults) (*Stanza, hcl.Diagnostics) {
	st := &Stanza{
		Service: group, Port: "app", NetworkMode: ModeBridge, Command: def.ProxyCommand, Driver: def.Driver,
		Controllers: def.Controllers, TrustBundle: def.TrustBundle, CPU: 50, MemoryMB: 64, KillTimeout: "5s",
	}
	if st.Command == "" {
		st.Command = "weft-proxy"
	}
	if st.Driver == "" {
		st.Driver = "raw_exec"
	}
	content, diags := blk.Body.Content(stanzaSchema)
	if a, ok := content.Attributes["service"]; ok {
		diags = append(diags, str(a, &st.Service)...)
		if st.Service != "" && !validName(st.Service) {
			diags = append(diags, attrDiag(a, "Invalid service name", "Service %q is not a DNS label: use lower-case letters, digits and dashes, starting and ending with a letter or digit.", st.Service))
		}
	} else if !validName(st.Service) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid service name",
			Detail:  fmt.Sprintf("The service defaults to the group's name, %q, which is not a DNS label. Set service = \"...\" in the weft block.", group),
			Subject: blk.DefRange().Ptr()})
	}
	if a, ok := content.Attributes["port"]; ok {
		diags = append(diags, str(a, &st.Port)...)
	}
	diags = append(diags, decodeProxyMode(st, blk, content.Attributes["proxy_mode"], def)...) // node.go
	if st.ProxyMode == ProxyModeNode {
		st.NetworkMode = ModeHost // the node proxy binds each instance's ports on the node
	}
	if a, ok := content.Attributes["network_mode"]; ok {
		diags = append(diags, str(a, &st.NetworkMode)...)
		if st.ProxyMode == ProxyModeNode && st.NetworkMode != ModeHost {
			diags = append(diags, attrDiag(a, "Node mode needs host networking",
				"network_mode = %q: the node proxy binds each node-mode instance's mesh and upstream ports on the node, so the group cannot have a network namespace of its own. Remove network_mode (node mode implies \"host\"), or serve the group by a sidecar.", st.NetworkMode))
		}
		if st.NetworkMode != ModeBridge && st.NetworkMode != ModeHost {
			diags = append(diags, attrDiag(a, "Unsupported network_mode", "network_mode = %q: use \"bridge\" (the default: the app is reachable only through its sidecar) or \"host\" (no isolation).", st.NetworkMode))
		}
	}
	if a, ok := content.Attributes["app_port"]; ok {
		diags = append(diags, num(a, &st.AppPort, 1, 65535)...)
		st.appPortAttr = a
	}
	seen := map[string]bool{}
	for _, u := range content.Blocks {
		switch u.Type {
		case "upstream":
			up := Upstream{Service: u.Labels[0]}
			if !validName(up.Service) {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid upstream name",
					Detail: fmt.Sprintf("Upstream %q is not a service name (a DNS label: lower-case letters, digits, dashes).", up.Service), Subject: u.LabelRanges[0].Ptr()})
			}
			if seen[up.Service] {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate upstream",
					Detail: fmt.Sprintf("Upstream %q is declared twice in this weft block; keep one.", up.Service), Subject: u.DefRange.Ptr()})
			}
			seen[up.Service] = true
			uc, d := u.Body.Content(upstreamSchema)
			diags = append(diags, d...)
			if a, ok := uc.Attributes["local_port"]; ok {
				diags = append(diags, num(a, &up.LocalPort, 1, 65535)...)
			} else if st.NetworkMode == ModeBridge {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Upstream needs a local_port",
					Detail:  fmt.Sprintf("With bridge networking the app calls upstream %q on 127.0.0.1:<local_port> inside its allocation: set local_port (one number for every allocation: each has its own network namespace). Render gives the app NOMAD_ADDR_upstream_%s.", up.Service, strings.ReplaceAll(up.Service, "-", "_")),
					Subject: u.DefRange.Ptr()})
			}
			st.Upstreams = append(st.Upstreams, up)
		case "sidecar":
			if st.ProxyMode == ProxyModeNode {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No sidecar in node mode",
					Detail:  "This group is served by the node proxy (proxy_mode = \"node\"), so it has no sidecar task to configure. Remove the sidecar block; the node proxy's own settings are those of its system job (weft nomad render --node-proxy).",
					Subject: u.DefRange.Ptr()})
				continue
			}
			sc, d := u.Body.Content(sidecarSchema)
			diags = append(diags, d...)
			names := make([]string, 0, len(sc.Attributes))
			for name := range sc.Attributes {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				a := sc.Attributes[name]
				switch name {
				case "command":
					diags = append(diags, str(a, &st.Command)...)
				case "driver":
					diags = append(diags, str(a, &st.Driver)...)
					if st.Driver != "raw_exec" && st.Driver != "exec" {
						diags = append(diags, attrDiag(a, "Unsupported driver", "The sidecar runs with raw_exec or exec (a binary on the client node), not %q.", st.Driver))
					}
				case "controller":
					diags = append(diags, strList(a, &st.Controllers)...)
				case "trust_bundle":
					diags = append(diags, str(a, &st.TrustBundle)...)
				case "cpu":
					diags = append(diags, num(a, &st.CPU, 1, 1<<20)...)
				case "memory":
					diags = append(diags, num(a, &st.MemoryMB, 1, 1<<20)...)
				case "kill_timeout":
					diags = append(diags, str(a, &st.KillTimeout)...)
					if _, err := time.ParseDuration(st.KillTimeout); err != nil {
						diags = append(diags, attrDiag(a, "Invalid kill_timeout", "kill_timeout = %q is not a duration such as \"5s\".", st.KillTimeout))
					}
				}
			}
		}
	}
	if st.appPortAttr != nil && st.NetworkMode == ModeHost {
		diags = append(diags, attrDiag(st.appPortAttr, "app_port needs bridge networking",
			"app_port is the app's port inside the allocation's own network namespace; with network_mode = \"host\" Nomad allocates the app's port (port %q in the network block). Remove app_port.", st.Port))
	}
	if st.ProxyMode == ProxyModeNode {
		return st, diags // no sidecar: no controller or trust bundle of its own
	}
	if !diags.HasErrors() && len(st.Controllers) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No controller address",
			Detail:  "The sidecar needs the controller's sidecar API: set controller = [\"HOST:PORT\"] in the weft block's sidecar block, or pass --controller.",
			Subject: blk.DefRange().Ptr()})
	}
	if !diags.HasErrors() && st.TrustBundle == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No trust bundle",
			Detail:  "The sidecar verifies the controller with the controller CA's root certificate, a file on every client node: set trust_bundle in the weft block's sidecar block, or pass --trust-bundle.",
			Subject: blk.DefRange().Ptr()})
	}
	return st, diags
}

// expand edits the group: ports, service, sidecar task; and removes the
// stanza.
func expand(st *Stanza, group *hclsyntax.Block, wgroup *hclwrite.Block, stanza *hclsyntax.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	nets := blocksOf(group.Body, "network")
	if len(nets) != 1 {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "The group needs one network block",
			Detail:  fmt.Sprintf("Group %q has %d network blocks; a meshed group needs exactly one, holding the app's port %q (port %q {}), to which the sidecar's ports are added.", label(group), len(nets), st.Port, st.Port),
			Subject: stanza.DefRange().Ptr()}}
	}
	if m, ok := nets[0].Body.Attributes["mode"]; ok {
		v, d := value(m.Expr)
		mode := ""
		if !d.HasErrors() && v.Type() == cty.String && !v.IsNull() {
			mode = v.AsString()
		}
		if mode != st.NetworkMode {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Network mode conflicts with the weft block",
				Detail:  fmt.Sprintf("The weft block renders network_mode = %q, and this network block sets mode = %s. Bridge networking (the default) keeps the app reachable only through its sidecar; to opt out, set network_mode = \"host\" in the weft block. Remove mode here, or make the two agree.", st.NetworkMode, hclText(m.Expr)),
				Subject: m.SrcRange.Ptr()})
		}
	}
	labels := map[string]*hclsyntax.Block{}
	for _, p := range blocksOf(nets[0].Body, "port") {
		labels[label(p)] = p
	}
	appBlock := labels[st.Port]
	if appBlock == nil && !(st.NetworkMode == ModeBridge && st.appPortAttr != nil) {
		subj := stanza.DefRange()
		if a, ok := stanza.Body.Attributes["port"]; ok {
			subj = a.SrcRange
		}
		detail := fmt.Sprintf("The app's port %q is not in group %q's network block. Add port %q {} there, or set port to the label the app listens on.", st.Port, label(group), st.Port)
		if st.NetworkMode == ModeBridge {
			detail += " With bridge networking you may instead give the app's port inside the allocation as app_port."
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No such port", Detail: detail, Subject: &subj})
	}
	for _, l := range []string{"mesh", "weft_admin"} {
		if labels[l] != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Port label taken",
				Detail: fmt.Sprintf("Group %q's network already has a port %q, which the weft block adds for the sidecar. Rename that port.", label(group), l), Subject: nets[0].DefRange().Ptr()})
		}
	}
	for _, t := range blocksOf(group.Body, "task") {
		if label(t) == ProxyTask && st.ProxyMode != ProxyModeNode {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Task name taken",
				Detail: fmt.Sprintf("Group %q already has a task %q, which the weft block adds. Remove the weft block (the sidecar is written by hand) or rename the task.", label(group), ProxyTask), Subject: t.DefRange().Ptr()})
		}
	}
	if st.NetworkMode == ModeBridge {
		diags = append(diags, bridgeAppPort(st, appBlock)...)
	}
	if diags.HasErrors() {
		return diags
	}
	var userService *hclsyntax.Block
	for _, s := range blocksOf(group.Body, "service") {
		if a, ok := s.Body.Attributes["name"]; ok {
			if v, d := value(a.Expr); !d.HasErrors() && v.Type() == cty.String && v.AsString() == st.Service {
				userService = s
			}
		}
	}

	wnet := wblocksOf(wgroup.Body(), "network")[0]
	var ports strings.Builder
	admin := "${NOMAD_ADDR_weft_admin}"
	servicePort := st.Port
	env := map[string]string{} // what the app tasks are told, beside Nomad's own variables
	var tags []string
	if st.NetworkMode == ModeBridge {
		// Every port block of a bridge network is published on the host:
		// only the sidecar's mesh port gets one. The app, the sidecar's
		// admin API and its outbound listeners stay on the allocation's
		// loopback.
		if _, ok := nets[0].Body.Attributes["mode"]; !ok {
			wnet.Body().SetAttributeValue("mode", cty.StringVal(ModeBridge))
		}
		if appBlock != nil {
			for _, wp := range wblocksOf(wnet.Body(), "port") {
				if ls := wp.Labels(); len(ls) == 1 && ls[0] == st.Port {
					wnet.Body().RemoveBlock(wp)
				}
			}
		}
		fmt.Fprintf(&ports, "port \"mesh\" {\n  to = %d\n}\n", MeshPortInside)
		admin = fmt.Sprintf("127.0.0.1:%d", AdminPortInside)
		servicePort = strconv.Itoa(st.AppPort)
		setAddrEnv(env, st.Port, "127.0.0.1", strconv.Itoa(st.AppPort))
		for _, u := range st.Upstreams {
			l := upstreamLabel(u.Service)
			setAddrEnv(env, l, "127.0.0.1", strconv.Itoa(u.LocalPort))
			tags = append(tags, fmt.Sprintf("%s%s=%d", TagUpstreamPrefix, strings.TrimPrefix(l, "upstream_"), u.LocalPort))
		}
	} else {
		ports.WriteString("port \"mesh\" {}\n")
		if st.ProxyMode != ProxyModeNode {
			ports.WriteString("port \"weft_admin\" {}\n")
		}
		// The sidecar binds the app's address and the upstream listeners
		// on 127.0.0.1 (not the node's IP, where any host could reach
		// them): tell the app the same.
		setAddrEnv(env, st.Port, "127.0.0.1", "")
		for _, u := range st.Upstreams {
			l := upstreamLabel(u.Service)
			if u.LocalPort != 0 {
				fmt.Fprintf(&ports, "port %q {\n  static = %d\n}\n", l, u.LocalPort)
			} else {
				fmt.Fprintf(&ports, "port %q {}\n", l)
			}
			setAddrEnv(env, l, "127.0.0.1", "")
		}
		if st.ProxyMode == ProxyModeNode {
			tags = append(tags, TagProxyModeNode)
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Isolation is off",
				Detail:  fmt.Sprintf("proxy_mode = \"node\": group %q shares the node's network, as the node proxy needs: its app's port can be reached beside the node proxy by anything on the node (the app should bind 127.0.0.1, as NOMAD_IP_%s now says), and the node proxy's listeners for its upstreams by any process there. Nomad has no kernel guard for node-mode groups yet; a sidecar (proxy_mode = \"instance\") with bridge networking is isolated.", label(group), st.Port),
				Subject: stanza.DefRange().Ptr()})
		} else {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Isolation is off",
				Detail:  fmt.Sprintf("network_mode = \"host\": group %q shares the node's network: its app's port can be reached beside its sidecar by anything on the node (the app should bind 127.0.0.1, as NOMAD_IP_%s now says), and its sidecar's outbound ports by any process there. Remove network_mode to get bridge networking, where only the sidecar's mesh port is reachable.", label(group), st.Port),
				Subject: stanza.DefRange().Ptr()})
		}
	}
	appendBlocks(wnet.Body(), ports.String(), false)

	// Callers' sidecars need a moment to drop a stopping allocation: keep
	// its app serving that long after Nomad deregisters the service.
	if _, ok := group.Body.Attributes["shutdown_delay"]; !ok {
		wgroup.Body().SetAttributeValue("shutdown_delay", cty.StringVal(ShutdownDelay))
	}

	// The app tasks learn where the app listens and where its upstreams are.
	for _, wt := range wblocksOf(wgroup.Body(), "task") {
		setEnv(wt, env)
	}

	// The stanza goes; what replaces it goes where it was, in order.
	wstanza := wblocksOf(wgroup.Body(), "weft")[0]
	wgroup.Body().RemoveBlock(wstanza)
	var gen strings.Builder
	switch {
	case st.ProxyMode == ProxyModeNode:
		fmt.Fprintf(&gen, "# %s: the app's port is reachable beside the node proxy.\n# %s\n", IsolationOffWarning, NodeModeComment)
	case st.NetworkMode == ModeHost:
		fmt.Fprintf(&gen, "# %s: the app's port is reachable beside its sidecar.\n# Remove network_mode = \"host\" from the weft block for bridge networking.\n", IsolationOffWarning)
	}
	if userService == nil {
		fmt.Fprintf(&gen, "service {\n  name     = %q\n  provider = \"nomad\"\n  port     = %q\n", st.Service, servicePort)
		if len(tags) > 0 {
			quotedTags := make([]string, len(tags))
			for i, t := range tags {
				quotedTags[i] = strconv.Quote(t)
			}
			fmt.Fprintf(&gen, "  tags     = [%s]\n", strings.Join(quotedTags, ", "))
		}
		gen.WriteString("}\n")
	} else if st.NetworkMode == ModeBridge {
		diags = append(diags, bridgeUserService(st, userService, wgroup, servicePort, tags)...)
	} else if st.ProxyMode == ProxyModeNode {
		diags = append(diags, nodeUserService(st, userService, wgroup)...) // node.go
	}
	if st.ProxyMode == ProxyModeNode {
		appendBlocks(wgroup.Body(), gen.String(), true)
		return diags
	}
	args := []string{"--instance", "${NOMAD_ALLOC_ID}/" + st.Service}
	for _, c := range st.Controllers {
		args = append(args, "--controller", c)
	}
	args = append(args, "--trust-bundle", st.TrustBundle, "--admin", admin,
		"--credential-adapter", "nomad", "--credential-env", "NOMAD_TOKEN")
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	fmt.Fprintf(&gen, `task %q {
  driver = %q
  lifecycle {
    hook    = "prestart"
    sidecar = true
  }
  identity {
    env = true
  }
  config {
    command = %q
    args    = [%s]
  }
  kill_timeout = %q
  resources {
    cpu    = %d
    memory = %d
  }
}
`, ProxyTask, st.Driver, st.Command, strings.Join(quoted, ", "), st.KillTimeout, st.CPU, st.MemoryMB)
	appendBlocks(wgroup.Body(), gen.String(), true)
	return diags
}

func upstreamLabel(service string) string {
	return "upstream_" + strings.ReplaceAll(service, "-", "_")
}

// bridgeAppPort settles the app's port inside the allocation: app_port,
// else the to of the app's port block, else DefaultAppPort. The app's port
// block is never published: a static host port on it is an error.
func bridgeAppPort(st *Stanza, appBlock *hclsyntax.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	to := 0
	if appBlock != nil {
		if a, ok := appBlock.Body.Attributes["static"]; ok {
			diags = append(diags, attrDiag(a.AsHCLAttribute(), "Static port on the app",
				"With bridge networking the app is reached only through its sidecar, so its port %q is not published on the host. Remove static; to publish an edge on purpose, add a port under another label with to = the app's port, and have the app listen on 0.0.0.0.", st.Port))
		}
		if a, ok := appBlock.Body.Attributes["to"]; ok {
			diags = append(diags, num(a.AsHCLAttribute(), &to, 1, 65535)...)
		}
	}
	switch {
	case st.AppPort != 0 && to != 0 && st.AppPort != to:
		diags = append(diags, attrDiag(st.appPortAttr, "Two app ports",
			"app_port = %d and the app's port block says to = %d. Keep one.", st.AppPort, to))
	case st.AppPort == 0 && to != 0:
		st.AppPort = to
	case st.AppPort == 0:
		st.AppPort = DefaultAppPort
	}
	if st.AppPort == MeshPortInside || st.AppPort == AdminPortInside {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "App port taken",
			Detail:  fmt.Sprintf("Inside the allocation the sidecar listens on %d (mesh) and %d (admin): give the app another port (app_port, or to in its port block).", MeshPortInside, AdminPortInside),
			Subject: appPortRange(st, appBlock)})
	}
	for _, u := range st.Upstreams {
		if u.LocalPort == st.AppPort || u.LocalPort == MeshPortInside || u.LocalPort == AdminPortInside {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Upstream port taken",
				Detail:  fmt.Sprintf("Upstream %q's local_port %d is the app's or the sidecar's own port inside the allocation; pick another.", u.Service, u.LocalPort),
				Subject: appPortRange(st, appBlock)})
		}
	}
	return diags
}

func appPortRange(st *Stanza, appBlock *hclsyntax.Block) *hcl.Range {
	if st.appPortAttr != nil {
		return st.appPortAttr.Expr.Range().Ptr()
	}
	if appBlock != nil {
		if a, ok := appBlock.Body.Attributes["to"]; ok {
			return a.Expr.Range().Ptr()
		}
		return appBlock.DefRange().Ptr()
	}
	return nil
}

// bridgeUserService points a service block the user wrote for the meshed
// service at the app's port inside the allocation, with the upstream tags.
func bridgeUserService(st *Stanza, svc *hclsyntax.Block, wgroup *hclwrite.Block, port string, tags []string) hcl.Diagnostics {
	if _, ok := svc.Body.Attributes["tags"]; ok && len(tags) > 0 {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Service tags needed",
			Detail:  fmt.Sprintf("With bridge networking the nomad adapter learns the upstreams' local ports from the service's tags: add %s to the tags of service %q, or drop this service block and let the weft block write it.", strings.Join(tags, ", "), st.Service),
			Subject: svc.DefRange().Ptr()}}
	}
	for _, ws := range wblocksOf(wgroup.Body(), "service") {
		a := ws.Body().GetAttribute("name")
		if a == nil || strings.TrimSpace(string(a.Expr().BuildTokens(nil).Bytes())) != strconv.Quote(st.Service) {
			continue
		}
		ws.Body().SetAttributeValue("port", cty.StringVal(port))
		if len(tags) > 0 {
			vals := make([]cty.Value, len(tags))
			for i, t := range tags {
				vals[i] = cty.StringVal(t)
			}
			ws.Body().SetAttributeValue("tags", cty.ListVal(vals))
		}
	}
	return nil
}

// setAddrEnv records NOMAD_IP_, NOMAD_PORT_ and NOMAD_ADDR_ of label.
// Without a port (host mode) NOMAD_PORT_ stays Nomad's and NOMAD_ADDR_
// interpolates it at run time.
func setAddrEnv(env map[string]string, label, ip, port string) {
	env["NOMAD_IP_"+label] = ip
	if port == "" {
		env["NOMAD_ADDR_"+label] = ip + ":${NOMAD_PORT_" + label + "}"
		return
	}
	env["NOMAD_PORT_"+label] = port
	env["NOMAD_ADDR_"+label] = ip + ":" + port
}

// setEnv sets env in the task's env block (adding one when it has none).
// Task env overrides Nomad's own variables, also where the task's config
// interpolates them (args = ["--listen", "${NOMAD_ADDR_app}"]).
func setEnv(task *hclwrite.Block, env map[string]string) {
	if len(env) == 0 {
		return
	}
	var eb *hclwrite.Block
	for _, b := range task.Body().Blocks() {
		if b.Type() == "env" {
			eb = b
		}
	}
	if eb == nil {
		eb = task.Body().AppendNewBlock("env", nil)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		// Nomad's ${...} stays as written, for Nomad to interpolate.
		toks := hclwrite.TokensForValue(cty.StringVal(env[k]))
		for _, t := range toks {
			t.Bytes = bytes.ReplaceAll(t.Bytes, []byte("$${"), []byte("${"))
		}
		eb.Body().SetAttributeRaw(k, toks)
	}
}

func hclText(e hcl.Expression) string {
	if v, d := value(e); !d.HasErrors() && v.Type() == cty.String && !v.IsNull() {
		return strconv.Quote(v.AsString())
	}
	return "(an expression)"
}

// appendBlocks parses src (our own HCL, with Nomad's ${...} runtime
// interpolations kept as written) and appends its blocks to body, with a
// blank line before each if spaced.
func appendBlocks(body *hclwrite.Body, src string, spaced bool) {
	f, diags := hclwrite.ParseConfig([]byte(src), "generated", hcl.InitialPos)
	if diags.HasErrors() {
		panic("jobspec: generated HCL does not parse: " + diags.Error() + "\n" + src)
	}
	for _, b := range f.Body().Blocks() {
		if spaced {
			body.AppendNewline()
		}
		body.AppendBlock(b)
	}
}

func attrDiag(a *hcl.Attribute, summary, format string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: a.Expr.Range().Ptr()}
}

// value evaluates a literal expression. For expressions are refused
// unevaluated: nested, a few of them multiply into billions of values.
func value(e hcl.Expression) (cty.Value, hcl.Diagnostics) {
	if d := hcllimit.Literal(e); d.HasErrors() {
		return cty.NilVal, d
	}
	return e.Value(nil)
}

func literal(a *hcl.Attribute) (cty.Value, hcl.Diagnostics) {
	v, d := value(a.Expr)
	if d.HasErrors() {
		return cty.NilVal, hcl.Diagnostics{attrDiag(a, "Not a literal value",
			"%s must be a literal: the weft block is expanded before Nomad interpolates anything.", a.Name)}
	}
	return v, nil
}

func str(a *hcl.Attribute, out *string) hcl.Diagnostics {
	v, d := literal(a)
	if d != nil {
		return d
	}
	if v.Type() != cty.String || v.IsNull() {
		return hcl.Diagnostics{attrDiag(a, "Wrong type", "%s must be a string, such as \"text\".", a.Name)}
	}
	*out = v.AsString()
	return nil
}

func strList(a *hcl.Attribute, out *[]string) hcl.Diagnostics {
	v, d := literal(a)
	if d != nil {
		return d
	}
	if !(v.Type().IsTupleType() || v.Type().IsListType()) || v.IsNull() || v.LengthInt() == 0 {
		return hcl.Diagnostics{attrDiag(a, "Wrong type", "%s must be a list of strings, such as [\"127.0.0.1:7400\"].", a.Name)}
	}
	var list []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() != cty.String || e.IsNull() {
			return hcl.Diagnostics{attrDiag(a, "Wrong type", "%s must be a list of strings, such as [\"127.0.0.1:7400\"].", a.Name)}
		}
		list = append(list, e.AsString())
	}
	*out = list
	return nil
}

func num(a *hcl.Attribute, out *int, lo, hi int) hcl.Diagnostics {
	v, d := literal(a)
	if d != nil {
		return d
	}
	if v.Type() != cty.Number || v.IsNull() {
		return hcl.Diagnostics{attrDiag(a, "Wrong type", "%s must be a whole number.", a.Name)}
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || n < int64(lo) || n > int64(hi) {
		return hcl.Diagnostics{attrDiag(a, "Out of range", "%s must be a whole number from %d to %d.", a.Name, lo, hi)}
	}
	*out = int(n)
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
