package compile

import (
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
)

// The status reasons of an instance whose scheduler serves it in another
// proxy mode than the policy gives its service (policy.Policy.
// ProxyModeMismatch).
const (
	// ReasonProxyModeRefused: a shared proxy serves it and policy refuses
	// that proxy its certificate; the instance is not served.
	ReasonProxyModeRefused = "proxy_mode_refused"
	// ReasonProxyModeMismatch: it keeps its sidecar where policy asks for
	// a shared proxy; it is served, not as policy says.
	ReasonProxyModeMismatch = "proxy_mode_mismatch"
)

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
		if d, ok := proxyModeDrop(p, e); ok {
			out = append(out, d)
		}
	}
	return out
}

// proxyModeDrop is e's entry in ProxyModeDrops, if it has one.
func proxyModeDrop(p *policy.Policy, e registry.Entry) (model.Dropped, bool) {
	d, refused := p.ProxyModeMismatch(e.Instance)
	if d == "" {
		return model.Dropped{}, false
	}
	reason := ReasonProxyModeMismatch
	if refused {
		reason = ReasonProxyModeRefused
	}
	return model.Dropped{Adapter: e.Adapter, Instance: e.Instance.ID, Reason: reason, Detail: d}, true
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
