package proxy

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/spiffe"
)

// This file is the inbound listener's authorization decision: which
// callers, named by the namespace and service of the SPIFFE ID in their
// verified client certificate, may call this instance's service.

// authzPolicy turns the inbound rules into a policy whose DecideCaller
// applies them: a named service over a whole namespace over "*", deny over
// allow among equals, else the default action. The policy knows this
// service's namespace (a rule without a source namespace names a caller in
// it) and trust domain (a caller from any other matches nothing and is
// refused); both come from the proxy's own identity, own, falling back to
// the configuration.
func authzPolicy(a *meshapi.Authz, cfg *meshapi.ProxyConfig, own string) *policy.Policy {
	td, ns := cfg.GetTrustDomain(), cfg.GetNamespace()
	if id, err := spiffe.Parse(own); err == nil {
		td, ns = id.TrustDomain, id.Namespace
	}
	if ns == "" {
		ns = model.DefaultNamespace
	}
	dest := cfg.GetService()
	pol := &policy.Policy{
		Mesh:     policy.Mesh{TrustDomain: td, DefaultAction: action(a.GetDefaultAction())},
		Services: map[string]policy.Service{dest: {Name: dest, Namespace: ns}},
	}
	for _, r := range a.GetRules() {
		in := ruleIntention(r, dest)
		for _, p := range r.GetPermissions() {
			in.Permissions = append(in.Permissions, policy.Permission{Action: action(p.GetAction())})
		}
		pol.Intentions = append(pol.Intentions, in)
	}
	return pol
}

func ruleIntention(r *meshapi.AuthzRule, dest string) policy.Intention {
	return policy.Intention{Source: r.GetSource(), SourceNamespace: r.GetSourceNamespace(), Destination: dest, Action: action(r.GetAction())}
}

// authzPermissions compiles the L7 permissions of every rule that has
// some (checked by listenerSpecs), by the rule's source name.
func authzPermissions(a *meshapi.Authz) map[string][]permission {
	out := map[string][]permission{}
	for _, r := range a.GetRules() {
		if perms, _ := compilePermissions(r); len(perms) > 0 {
			in := ruleIntention(r, "")
			out[in.SourceName()] = perms
		}
	}
	return out
}

func action(a meshapi.Action) policy.Action {
	if a == meshapi.Action_ACTION_ALLOW {
		return policy.Allow
	}
	return policy.Deny
}

// winner is the intention that decides for caller, or nil when the
// default does; ok is false for a caller from another trust domain, which
// nothing may allow.
func (st *inboundState) winner(caller spiffe.Identity) (in *policy.Intention, ok bool) {
	if caller.TrustDomain != st.authz.Mesh.TrustDomain {
		return nil, false
	}
	return st.authz.WinnerFor(policy.Caller{Namespace: caller.Namespace, Service: caller.Service}, st.service), true
}

// otherDomain is the refusal for a caller from another trust domain.
func (st *inboundState) otherDomain(caller spiffe.Identity) string {
	return fmt.Sprintf("weft: %s may not call %s: it is not in this mesh's trust domain %q, and no intention or default allows another trust domain",
		caller, st.service, st.authz.Mesh.TrustDomain)
}

// authorize reports whether caller may call this service, and if not, a
// message for the caller saying why and what to do.
func (st *inboundState) authorize(caller spiffe.Identity) (bool, string) {
	win, ok := st.winner(caller)
	if !ok {
		return false, st.otherDomain(caller)
	}
	act, byIntention := st.authz.Mesh.DefaultAction, false
	if win != nil {
		act, byIntention = st.authz.DecideCaller(policy.Caller{Namespace: caller.Namespace, Service: caller.Service}, st.service)
	}
	if act == policy.Allow {
		return true, ""
	}
	from := caller.Namespace + "/" + caller.Service
	if byIntention {
		return false, fmt.Sprintf("weft: %s may not call %s: the intention from %q to %q denies service %q", caller, st.service, win.SourceName(), st.service, from)
	}
	return false, fmt.Sprintf("weft: %s may not call %s: no intention allows it and the default is deny; add an intention from %q to %q", caller, st.service, from, st.service)
}

// authorizeRequest is authorize for one HTTP request: when the rule that
// decides for the caller has permissions, the first that matches r
// decides, and a request none matches gets the default action. query is
// r's parsed query, or nil.
func (st *inboundState) authorizeRequest(caller spiffe.Identity, r *http.Request, query url.Values) (bool, string) {
	win, ok := st.winner(caller)
	if !ok {
		return false, st.otherDomain(caller)
	}
	if win == nil || len(win.Permissions) == 0 {
		return st.authorize(caller)
	}
	for i, p := range st.perms[win.SourceName()] {
		if p.match == nil || p.match.match(r, query) {
			if p.allow {
				return true, ""
			}
			return false, fmt.Sprintf("weft: %s may not %s %s on %s: permission %d of the intention from %q to %q denies it",
				caller, r.Method, r.URL.Path, st.service, i+1, win.SourceName(), st.service)
		}
	}
	if st.authz.Mesh.DefaultAction == policy.Allow {
		return true, ""
	}
	return false, fmt.Sprintf("weft: %s may not %s %s on %s: no permission of the intention from %q to %q matches and the default is deny",
		caller, r.Method, r.URL.Path, st.service, win.SourceName(), st.service)
}
