package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/proxy/authz"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/spiffe"
)

// GET /v1/authz?caller=C&callee=S[&method=M&path=P] answers whether the
// mesh lets C call S (and, with a method and a path, that request), and by
// which intention, like `consul intention check`. It decides as the
// callee's sidecar would, with the same code on the same rules: the
// authorization rules core/compile gives every sidecar of S under the
// policy in force (core/proxy/authz), after the sidecar's own
// canonicalization of the request (core/proxy/canon), so that a path
// spelled to slip past a rule ("/%61dmin", "/x/../admin", "//admin",
// ";" parameters) gets the answer the sidecar really gives.
//
// C is a service ("svc", in the namespace its service block gives, or
// "ns/svc") or a SPIFFE ID; S is "svc" or "ns/svc".

// AuthzReport is GET /v1/authz's answer.
type AuthzReport struct {
	Caller string `json:"caller"` // the caller's SPIFFE ID
	Callee string `json:"callee"` // namespace/service
	Method string `json:"method,omitempty"`
	// Path is the request's path as asked; CanonicalPath what the
	// sidecar's rules read.
	Path          string `json:"path,omitempty"`
	CanonicalPath string `json:"canonical_path,omitempty"`
	Allowed       bool   `json:"allowed"`
	// Reason is the sidecar's own message when it refuses ("" when
	// allowed).
	Reason string `json:"reason,omitempty"`
	// BadRequest: the sidecar refuses the request before any rule (400),
	// and why.
	BadRequest string `json:"bad_request,omitempty"`
	// Intention is the intention that decides ("source -> destination"),
	// Declared where it is written (file:line); both empty when
	// default_action decides (Default).
	Intention string `json:"intention,omitempty"`
	Declared  string `json:"declared,omitempty"`
	Default   bool   `json:"default,omitempty"`
	// DefaultAction is the mesh's default_action.
	DefaultAction string `json:"default_action"`
}

// maxAuthzField bounds each parameter of GET /v1/authz.
const maxAuthzField = 4096

func (h *handler) serveAuthz(w http.ResponseWriter, r *http.Request) {
	rep, code, err := h.authz(r.URL.Query())
	if err != nil {
		http.Error(w, "deciding: "+err.Error(), code)
		return
	}
	writeJSON(w, rep)
}

func (h *handler) authz(v url.Values) (*AuthzReport, int, error) {
	for k, vs := range v {
		switch k {
		case "caller", "callee", "method", "path":
		default:
			return nil, http.StatusBadRequest, fmt.Errorf("unknown parameter %q; send caller, callee, and optionally method and path", k)
		}
		if len(vs) > 1 || len(vs[0]) > maxAuthzField {
			return nil, http.StatusBadRequest, fmt.Errorf("parameter %q: give it once, at most %d bytes", k, maxAuthzField)
		}
	}
	p := h.o.Mesh.Policy()
	if p == nil {
		return nil, http.StatusServiceUnavailable, fmt.Errorf("the controller has no policy in force yet; see weft status")
	}
	td := h.o.Mesh.TrustDomain()
	caller, err := authzCaller(p, td, v.Get("caller"))
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	ns, callee, err := tapName("callee", v.Get("callee"), true)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if ns == "" {
		ns = p.Namespace(callee)
	} else if ns != p.Namespace(callee) {
		return nil, http.StatusBadRequest, fmt.Errorf("callee %s/%s: service %s runs in namespace %s", ns, callee, callee, p.Namespace(callee))
	}
	method, path := v.Get("method"), v.Get("path")
	if (method == "") != (path == "") {
		return nil, http.StatusBadRequest, fmt.Errorf("give both a method and a path (GET /admin), or neither (the connection alone)")
	}
	cfg := &meshapi.ProxyConfig{Service: callee, Namespace: ns, TrustDomain: td}
	rules := authz.New(compile.Authz(p, callee), cfg, spiffe.Identity{TrustDomain: td, Namespace: ns, Service: callee}.String())
	rep := &AuthzReport{Caller: caller.String(), Callee: ns + "/" + callee, Method: method, Path: path, DefaultAction: string(p.Mesh.DefaultAction)}
	if path == "" {
		rep.Allowed, rep.Reason = rules.Authorize(caller)
	} else {
		req, bad := authzRequest(method, path)
		if bad != "" {
			rep.BadRequest = bad
			rep.Reason = "weft: bad request: " + bad
			return rep, http.StatusOK, nil
		}
		rep.CanonicalPath = req.URL.Path
		rep.Allowed, rep.Reason = rules.AuthorizeRequest(caller, req, req.URL.Query())
	}
	if caller.TrustDomain == td {
		if in := p.WinnerFor(policy.Caller{Namespace: caller.Namespace, Service: caller.Service}, callee); in != nil {
			rep.Intention, rep.Declared = in.Key(), p.Declared[in.Key()]
		}
	}
	rep.Default = rep.Intention == ""
	return rep, http.StatusOK, nil
}

// authzCaller reads a caller: a SPIFFE ID, "ns/svc", or "svc" in the
// namespace its service block gives.
func authzCaller(p *policy.Policy, td, s string) (spiffe.Identity, error) {
	if strings.HasPrefix(s, "spiffe://") {
		id, err := spiffe.Parse(s)
		if err != nil {
			return id, fmt.Errorf("caller %q: %w", clip(s), err)
		}
		return id, nil
	}
	ns, svc, err := tapName("caller", s, true)
	if err != nil {
		return spiffe.Identity{}, err
	}
	if ns == "" {
		ns = p.Namespace(svc)
	}
	return spiffe.Identity{TrustDomain: td, Namespace: ns, Service: svc}, nil
}

// authzRequest is the request a sidecar would read for method and target
// path, in canonical form, or why it refuses it (400).
func authzRequest(method, target string) (*http.Request, string) {
	u, err := url.ParseRequestURI(target)
	if err != nil || target[0] != '/' {
		return nil, fmt.Sprintf("the request target %q is not a path (net/http answers 400 before the sidecar reads it)", clip(target))
	}
	r := &http.Request{Method: method, RequestURI: target, URL: u, Header: http.Header{}}
	if bad := canon.Canonicalize(r); bad != nil {
		return nil, bad.Error()
	}
	return r, ""
}
