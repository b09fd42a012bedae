package proxy

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/spiffe"
)

// This file is the inbound listener's authorization decision: which
// callers, named by the namespace and service of the SPIFFE ID in their
// verified client certificate, may call this instance's service. It
// evaluates the compiled rules (meshapi.Authz) itself; the controller
// resolved the policy's intentions into them (core/compile), and
// authz_equiv_test.go shows this decides as policy.DecideCaller does for
// the intentions the rules came from.

// Rule sources, as intentions write them.
const wildcard = "*"

// Specificity of a rule's source: a named service beats a namespace's
// "*", which beats "*".
const (
	specService   = 4
	specNamespace = 2
	specAny       = 0
)

// authzRules are an inbound listener's compiled authorization rules.
type authzRules struct {
	trustDomain  string // a caller from any other is refused
	namespace    string // this service's: a rule without a source namespace names callers in it
	defaultAllow bool
	rules        []authzRule
}

// authzRule is one compiled meshapi.AuthzRule.
type authzRule struct {
	source, sourceNS string
	spec             int  // specificity of the source
	allow            bool // for a connection: with permissions, whether any allows
	perms            []permission
}

// newAuthzRules compiles a's rules for this instance. Its trust domain
// and namespace come from its own identity, own, falling back to the
// configuration. The rules' permissions were checked by listenerSpecs.
func newAuthzRules(a *meshapi.Authz, cfg *meshapi.ProxyConfig, own string) *authzRules {
	td, ns := cfg.GetTrustDomain(), cfg.GetNamespace()
	if id, err := spiffe.Parse(own); err == nil {
		td, ns = id.TrustDomain, id.Namespace
	}
	if ns == "" {
		ns = model.DefaultNamespace
	}
	az := &authzRules{trustDomain: td, namespace: ns, defaultAllow: a.GetDefaultAction() == meshapi.Action_ACTION_ALLOW}
	for _, r := range a.GetRules() {
		perms, _ := compilePermissions(r)
		ar := authzRule{source: r.GetSource(), sourceNS: r.GetSourceNamespace(), perms: perms}
		switch {
		case ar.source != wildcard:
			ar.spec = specService
		case ar.sourceNS != wildcard:
			// "ns/*"; and "*" written without a namespace, which
			// policy.WinnerFor ranks the same (it still matches any
			// namespace, see matches).
			ar.spec = specNamespace
		default:
			ar.spec = specAny
		}
		if len(r.GetPermissions()) == 0 {
			ar.allow = r.GetAction() == meshapi.Action_ACTION_ALLOW
		} else {
			for _, p := range r.GetPermissions() {
				ar.allow = ar.allow || p.GetAction() == meshapi.Action_ACTION_ALLOW
			}
		}
		az.rules = append(az.rules, ar)
	}
	return az
}

// name is the rule's source as a policy author writes it: "svc",
// "ns/svc", "ns/*" or "*".
func (r *authzRule) name() string {
	if r.sourceNS == "" || (r.sourceNS == wildcard && r.source == wildcard) {
		return r.source
	}
	return r.sourceNS + "/" + r.source
}

// matches reports whether the rule names caller, a service in namespace
// ns; dstNS is this service's namespace. A "*" source written without a
// namespace is any namespace, as it always was.
func (r *authzRule) matches(ns, svc, dstNS string) bool {
	if svc == "" && r.source != wildcard {
		return false
	}
	switch {
	case r.sourceNS == wildcard, r.sourceNS == "" && r.source == wildcard:
		// any namespace
	case r.sourceNS == "":
		if ns != dstNS {
			return false
		}
	default:
		if ns != r.sourceNS {
			return false
		}
	}
	return r.source == wildcard || r.source == svc
}

// winner is the rule that decides for caller, or nil when the default
// does: the most specific source, deny first among equals. ok is false
// for a caller from another trust domain, which nothing may allow.
func (az *authzRules) winner(caller spiffe.Identity) (win *authzRule, ok bool) {
	if caller.TrustDomain != az.trustDomain {
		return nil, false
	}
	best := -1
	for i := range az.rules {
		r := &az.rules[i]
		if !r.matches(caller.Namespace, caller.Service, az.namespace) {
			continue
		}
		if r.spec > best || (r.spec == best && !r.allow && win.allow) {
			best, win = r.spec, r
		}
	}
	return win, true
}

// winner is the rule that decides for caller (see authzRules.winner).
func (st *inboundState) winner(caller spiffe.Identity) (*authzRule, bool) {
	return st.authz.winner(caller)
}

// otherDomain is the refusal for a caller from another trust domain.
func (st *inboundState) otherDomain(caller spiffe.Identity) string {
	return fmt.Sprintf("weft: %s may not call %s: it is not in this mesh's trust domain %q, and no intention or default allows another trust domain",
		caller, st.service, st.authz.trustDomain)
}

// authorize reports whether caller may call this service, and if not, a
// message for the caller saying why and what to do.
func (st *inboundState) authorize(caller spiffe.Identity) (bool, string) {
	win, ok := st.winner(caller)
	if !ok {
		return false, st.otherDomain(caller)
	}
	allow := st.authz.defaultAllow
	if win != nil {
		allow = win.allow
	}
	if allow {
		return true, ""
	}
	from := caller.Namespace + "/" + caller.Service
	if win != nil {
		return false, fmt.Sprintf("weft: %s may not call %s: the intention from %q to %q denies service %q", caller, st.service, win.name(), st.service, from)
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
	if win == nil || len(win.perms) == 0 {
		return st.authorize(caller)
	}
	for i, p := range win.perms {
		if p.match == nil || p.match.Match(r, query) {
			if p.allow {
				return true, ""
			}
			return false, fmt.Sprintf("weft: %s may not %s %s on %s: permission %d of the intention from %q to %q denies it",
				caller, r.Method, r.URL.Path, st.service, i+1, win.name(), st.service)
		}
	}
	if st.authz.defaultAllow {
		return true, ""
	}
	return false, fmt.Sprintf("weft: %s may not %s %s on %s: no permission of the intention from %q to %q matches and the default is deny",
		caller, r.Method, r.URL.Path, st.service, win.name(), st.service)
}
