package policy

import (
	"fmt"

	"github.com/weftmesh/weft/core/model"
)

// ProxyMode is the deployment model policy gives a service's instances
// (docs/deployment-models.md): who may hold their certificates.
type ProxyMode string

const (
	// ProxyInstance: a proxy per instance (the sidecar). No shared proxy
	// may hold the service's certificates.
	ProxyInstance ProxyMode = "instance"
	// ProxyApplication: one proxy per application (namespace and service)
	// on a node, shared by that application's instances there.
	ProxyApplication ProxyMode = "application"
	// ProxyNode: the node proxy, shared by every node-mode instance of
	// the node.
	ProxyNode ProxyMode = "node"
)

// ProxyModes lists the modes in the order the HCL diagnostics name them.
var ProxyModes = []ProxyMode{ProxyInstance, ProxyApplication, ProxyNode}

// ProxyModeOf is the mode policy gives service: its service block's
// proxy_mode, else the mesh's default_proxy_mode, else "" (policy says
// nothing: the scheduler's choice stands, as before policy had a say).
// from says where the mode was written, for messages.
func (p *Policy) ProxyModeOf(service string) (mode ProxyMode, from string) {
	if s, ok := p.Services[service]; ok && s.ProxyMode != "" {
		return s.ProxyMode, fmt.Sprintf("service %q sets proxy_mode = %q", service, s.ProxyMode)
	}
	if p.Mesh.DefaultProxyMode != "" {
		return p.Mesh.DefaultProxyMode, fmt.Sprintf("the mesh's default_proxy_mode is %q", p.Mesh.DefaultProxyMode)
	}
	return "", ""
}

// SchedulerProxyMode is the mode an instance's scheduler chose for it, as
// its adapter reports it in Meta[model.MetaProxyMode]: a Nomad service tag
// weft_proxy_mode=node, the local workloads file's proxy_mode. Absent (or
// "sidecar", the local file's word) is ProxyInstance; a value that names
// no mode is returned as it is, and agrees with no policy.
func SchedulerProxyMode(in model.Instance) ProxyMode {
	switch v := in.Meta[model.MetaProxyMode]; v {
	case "", "sidecar":
		return ProxyInstance
	default:
		return ProxyMode(v)
	}
}

// AdmitShared decides whether a shared proxy of kind (ProxyNode or
// ProxyApplication) may take a certificate of an instance of service. The
// rule (docs/deployment-models.md, "Choosing the model in policy"):
//
//   - policy gives the service a mode (its proxy_mode, or the mesh's
//     default_proxy_mode): only a proxy of that kind may hold its
//     certificates; policy "instance" refuses every shared proxy;
//   - policy says nothing: the scheduler's choice stands (the check the
//     caller makes of it, such as Nomad's weft_proxy_mode=node tag, is the
//     only one), as before policy had a say.
//
// A sidecar is never refused by this rule: it holds one instance's
// identity, the narrowest blast radius; a sidecar serving a service that
// policy puts in a shared mode is a mismatch that status lists
// (ProxyModeMismatch), not a refusal.
//
// The error says what policy says and what to change.
func (p *Policy) AdmitShared(service string, kind ProxyMode) error {
	mode, from := p.ProxyModeOf(service)
	if mode == "" || mode == kind {
		return nil
	}
	return fmt.Errorf("policy keeps service %q from %s proxies: %s; serve its instances as policy says, or change the policy's proxy_mode to %q",
		service, kind, from, kind)
}

// ProxyModeMismatch says how the mode in's scheduler chose for it differs
// from the one policy gives its service, or "" when they agree or policy
// says nothing. refused is true when the proxy the scheduler chose is a
// shared one that policy refuses (AdmitShared): the instance is not
// served; false when it keeps a sidecar that policy would share.
func (p *Policy) ProxyModeMismatch(in model.Instance) (detail string, refused bool) {
	mode, from := p.ProxyModeOf(in.Service)
	if mode == "" {
		return "", false
	}
	got := SchedulerProxyMode(in)
	if got == mode {
		return "", false
	}
	what := map[ProxyMode]string{
		ProxyInstance:    "its own sidecar",
		ProxyApplication: "its application's proxy",
		ProxyNode:        "the node proxy",
	}
	by, known := what[got]
	if !known {
		by = fmt.Sprintf("an unknown proxy mode %q", string(got))
	}
	if got == ProxyNode || got == ProxyApplication || !known {
		return fmt.Sprintf("the scheduler serves it by %s but %s: the controller refuses that proxy its certificate; serve it by %s (docs/deployment-models.md), or change the policy", by, from, what[mode]), true
	}
	return fmt.Sprintf("the scheduler serves it by %s but %s: it keeps its sidecar; move it to %s (docs/deployment-models.md), or change the policy", by, from, what[mode]), false
}
