package compile

import (
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// ReasonProxyModeMismatch is the status reason of an instance whose
// scheduler serves it in another proxy mode than the policy gives its
// service (policy.Policy.ProxyModeMismatch): a shared proxy that policy
// refuses its certificate, or a sidecar where policy asks for a shared
// proxy.
const ReasonProxyModeMismatch = "proxy_mode_mismatch"

// ProxyModeDrops lists the instances of entries whose scheduler's proxy
// mode (Meta[model.MetaProxyMode]) disagrees with policy's, in entries'
// order, as the controller's status lists them. A policy that gives no
// service a proxy mode lists none, without looking at the entries.
func ProxyModeDrops(p *policy.Policy, entries []registry.Entry) []model.Dropped {
	if !hasProxyModes(p) {
		return nil
	}
	var out []model.Dropped
	for _, e := range entries {
		if d := p.ProxyModeMismatch(e.Instance); d != "" {
			out = append(out, model.Dropped{Adapter: e.Adapter, Instance: e.Instance.ID, Reason: ReasonProxyModeMismatch, Detail: d})
		}
	}
	return out
}

// hasProxyModes reports whether p says anything of proxy modes.
func hasProxyModes(p *policy.Policy) bool {
	if p.Mesh.DefaultProxyMode != "" {
		return true
	}
	for _, s := range p.Services {
		if s.ProxyMode != "" {
			return true
		}
	}
	return false
}
