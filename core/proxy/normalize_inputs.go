package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/weftmesh/weft/core/proxy/authz"
	"github.com/weftmesh/weft/core/proxy/canon"
	"github.com/weftmesh/weft/core/proxy/ratelimit"
)

// Headers the inbound sidecar owns: it sets them on every request to the
// application, and drops what a client sent under their names.
const (
	headerCaller = "X-Weft-Caller"
	headerXFCC   = "X-Forwarded-Client-Cert"
)

var ownedHeaders = []string{headerCaller, headerXFCC}

// stripOwnedHeaders removes from h the headers the sidecar owns, however
// spelled: any case (net/http has made the names canonical), and with
// underscores for dashes, which CGI-style servers (WSGI, Rack, PHP) read
// as the same header. It also removes their names from Connection, so
// that no hop-by-hop processing drops what the sidecar sets.
func stripOwnedHeaders(h http.Header) {
	for k := range h {
		if isOwnedName(k) {
			delete(h, k)
		}
	}
	conn := h["Connection"]
	named := false
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			named = named || isOwnedName(strings.TrimSpace(tok))
		}
	}
	if !named {
		return
	}
	var kept []string
	for _, v := range conn {
		var toks []string
		for tok := range strings.SplitSeq(v, ",") {
			if !isOwnedName(strings.TrimSpace(tok)) {
				toks = append(toks, tok)
			}
		}
		if len(toks) > 0 {
			kept = append(kept, strings.Join(toks, ","))
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = kept
}

// forwardedHeaders name a request's original client, for apps behind
// proxies. A gateway sets X-Forwarded-For and X-Forwarded-Proto itself
// (gateway.go); what a client sent of them never reaches an app.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"}

// relayedForwarded are the forwarded headers an inbound passes on to its
// app from a gateway (Inbound.forwarding_callers).
var relayedForwarded = []string{"X-Forwarded-For", "X-Forwarded-Proto"}

// stripForwarded removes the forwarded headers from h in any case, and
// with underscores for dashes (as CGI-style servers read them).
func stripForwarded(h http.Header) {
	for k := range h {
		for _, f := range forwardedHeaders {
			if len(k) == len(f) && equalFoldDashed(k, f) {
				delete(h, k)
			}
		}
	}
}

// isOwnedName reports whether name is an owned header's name in any case,
// with dashes or underscores.
func isOwnedName(name string) bool {
	for _, k := range ownedHeaders {
		if len(name) == len(k) && equalFoldDashed(name, k) {
			return true
		}
	}
	return false
}

func equalFoldDashed(a, b string) bool {
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca == '_' {
			ca = '-'
		}
		if cb == '_' {
			cb = '-'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// dashed is a header name with underscores as dashes, in canonical case.
func dashed(name string) string {
	return http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
}

// ruleInputs are the header and query parameter names an inbound's L7
// rules (permissions and rate limits) read. A rule reads one value; a
// request that gives one of them twice, or under another spelling, could
// be read one way by the rule and another by the application (the first
// value, the last, both joined), so the inbound refuses it (check).
type ruleInputs struct {
	headers     []string          // canonical names
	dashedNames map[string]string // dashed(name) -> name, for every name
	query       []string
}

func collectRuleInputs(az *authz.Rules, limits []*ratelimit.Limiter) ruleInputs {
	hs, qs := map[string]bool{}, map[string]bool{}
	az.Inputs(hs, qs)
	for _, l := range limits {
		if m := l.Matcher(); m != nil {
			m.Inputs(hs, qs)
		}
	}
	var in ruleInputs
	for h := range hs {
		in.headers = append(in.headers, h)
		if in.dashedNames == nil {
			in.dashedNames = map[string]string{}
		}
		in.dashedNames[dashed(h)] = h
	}
	for q := range qs {
		in.query = append(in.query, q)
	}
	slices.Sort(in.headers)
	slices.Sort(in.query)
	return in
}

// check refuses a request that repeats, or spells another way, a header
// or query parameter the rules read; it returns the parsed query when
// the rules read it (nil otherwise). service names the destination in
// the refusal.
//
//   - A header the rules read may appear once. A header whose name is
//     that name with underscores for dashes ("X_Role" for "X-Role") is
//     refused: CGI-style servers read both as HTTP_X_ROLE.
//   - When the rules read the query, it must parse one way: no ";"
//     separator (some servers split on it, net/http does not), no
//     invalid percent-encoding; a parameter the rules read may appear
//     once, and not in another case ("Debug" for "debug"), which some
//     frameworks read as the same parameter.
func (in *ruleInputs) check(r *http.Request, service string) (url.Values, *canon.BadRequest) {
	for _, h := range in.headers {
		if n := len(r.Header[h]); n > 1 {
			return nil, canon.Refuse(fmt.Sprintf("the header %s appears %d times; the authorization rules of %s read it, so send it once", h, n, service))
		}
	}
	if len(in.dashedNames) > 0 {
		for k := range r.Header {
			if strings.IndexByte(k, '_') < 0 {
				continue
			}
			if rule, ok := in.dashedNames[dashed(k)]; ok && rule != k {
				return nil, canon.Refuse(fmt.Sprintf("the header %s is %s spelled with underscores, which applications may read as the same header; the authorization rules of %s read %s, so send it as %s", canon.QuoteForBody(k), rule, service, rule, rule))
			}
		}
	}
	if len(in.query) == 0 {
		return nil, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, canon.Refuse(fmt.Sprintf("the query does not parse one way (%v); separate parameters with & (not ;) and write %% as %%25", err))
	}
	for _, name := range in.query {
		if n := len(q[name]); n > 1 {
			return nil, canon.Refuse(fmt.Sprintf("the query parameter %s appears %d times; the authorization rules of %s read it, so send it once", canon.QuoteForBody(name), n, service))
		}
	}
	for k := range q {
		for _, name := range in.query {
			if k != name && strings.EqualFold(k, name) {
				return nil, canon.Refuse(fmt.Sprintf("the query parameter %s is %s in another case, which applications may read as the same parameter; the authorization rules of %s read %s", canon.QuoteForBody(k), canon.QuoteForBody(name), service, canon.QuoteForBody(name)))
			}
		}
	}
	return q, nil
}
