package proxy

import (
	"net/http"
	"net/url"

	"github.com/weftmesh/weft/core/spiffe"
)

// The inbound listener's authorization decision is package authz's, on
// the rules of the configuration in force (inboundState.authz).

// authorize reports whether caller may call this service, and if not, a
// message for the caller saying why and what to do.
func (st *inboundState) authorize(caller spiffe.Identity) (bool, string) {
	return st.authz.Authorize(caller)
}

// authorizeRequest is authorize for one HTTP request (authz.Rules).
func (st *inboundState) authorizeRequest(caller spiffe.Identity, r *http.Request, query url.Values) (bool, string) {
	return st.authz.AuthorizeRequest(caller, r, query)
}
