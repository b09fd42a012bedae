package jwtauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/meshapi"
)

// Limits checked before anything is parsed.
const (
	// MaxTokenBytes is the longest token read; a longer one is refused
	// (ReasonTooLarge) without being decoded.
	MaxTokenBytes = 8 << 10
	// MaxJWKSBytes is the largest key set a provider may have; the
	// controller checks it when it reads the keys, the sidecar again.
	MaxJWKSBytes = 256 << 10
	// MaxKeys is the most keys a key set may hold.
	MaxKeys = 64
	// MaxClaimsDepth is the deepest nesting of a token's header and claims.
	MaxClaimsDepth = 16
)

// Reasons a token is refused: the reason label of
// weft_jwt_failures_total, and what Failure.Reason holds.
const (
	ReasonMissing     = "missing"       // a required token is absent
	ReasonMalformed   = "malformed"     // not a compact JWS with a JSON header and claims, or given twice
	ReasonTooLarge    = "too_large"     // longer than MaxTokenBytes, or nested deeper than MaxClaimsDepth
	ReasonAlgorithm   = "algorithm"     // none, HS*, or another algorithm not allowed
	ReasonUnknownKey  = "unknown_key"   // no key of the provider's set fits the token's kid and alg
	ReasonSignature   = "signature"     // no fitting key verifies the signature
	ReasonExpired     = "expired"       // exp (required) is past, beyond the clock skew
	ReasonNotYetValid = "not_yet_valid" // nbf is ahead, beyond the clock skew
	ReasonIssuer      = "issuer"        // iss is no provider's that reads the token there
	ReasonAudience    = "audience"      // aud names none of the provider's audiences
)

// Algorithms are the signature algorithms accepted: asymmetric ones only.
// "none" and the HMAC algorithms (HS256/384/512) are refused whatever a key
// set says, so a public key can never serve as an HMAC secret; Weft does
// not support shared-secret providers.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Failure is a token refused, or a required one missing: the 401.
type Failure struct {
	Provider string // the provider whose token it was ("" when none could be told)
	Reason   string // one of the Reason constants
	Detail   string // for the caller and the log
}

func (f *Failure) Error() string {
	if f.Provider == "" {
		return "weft: " + f.Detail
	}
	return fmt.Sprintf("weft: JWT provider %q: %s", f.Provider, f.Detail)
}

// Result is what Authenticate found.
type Result struct {
	// Claims of each valid token, by provider name; nil when none.
	Claims map[string]map[string]any
	// Failure is set when a token was refused, or a required one missing.
	Failure *Failure
}

// Subject returns the sub claim of provider's valid token, or "".
func (r Result) Subject(provider string) string {
	s, _ := r.Claims[provider]["sub"].(string)
	return s
}

// Verifier checks the end-user tokens of an inbound's requests against
// the providers of its configuration. It is immutable: a new configuration
// compiles a new one (keys rotate that way).
type Verifier struct {
	providers []*provider
	required  []string
	// forwarded are every header a provider sets from claims: removed from
	// every request first.
	forwarded []string
}

type provider struct {
	name, issuer string
	audiences    []string
	skew         time.Duration
	keys         []jose.JSONWebKey
	header       string // canonical; "" none
	bearer       bool   // header is Authorization: "Bearer <token>"
	query        string
	cookie       string
	forward      [][2]string // claim, canonical header; sorted by claim
	forwardToken bool
}

// New compiles the providers and requirement of cfg's inbound. It
// returns nil (which checks nothing) when there are none, and an error
// when a provider is wrong (its keys too many or too large, a key that
// cannot be read).
func New(cfg *meshapi.ProxyConfig) (*Verifier, error) {
	// A sidecar's inbound or a gateway's listeners (a config has one or
	// the other).
	req := cfg.GetInbound().GetJwt().GetProviders()
	if g := cfg.GetGateway(); g != nil {
		req = append(slices.Clone(req), g.GetJwt().GetProviders()...)
	}
	if len(cfg.GetJwtProviders()) == 0 && len(req) == 0 {
		return nil, nil
	}
	v := &Verifier{required: slices.Clone(req)}
	seen := map[string]bool{}
	for _, mp := range cfg.GetJwtProviders() {
		if mp.GetName() == "" || seen[mp.GetName()] {
			return nil, fmt.Errorf("JWT provider %q: a provider needs a name of its own", mp.GetName())
		}
		seen[mp.GetName()] = true
		p, err := compileProvider(mp)
		if err != nil {
			return nil, fmt.Errorf("JWT provider %q: %w", mp.GetName(), err)
		}
		v.providers = append(v.providers, p)
		for _, f := range p.forward {
			if !slices.Contains(v.forwarded, f[1]) {
				v.forwarded = append(v.forwarded, f[1])
			}
		}
	}
	for _, n := range req {
		if !seen[n] {
			return nil, fmt.Errorf("the inbound or gateway requires tokens of JWT provider %q, which the configuration does not carry", n)
		}
	}
	return v, nil
}

func compileProvider(mp *meshapi.JwtProvider) (*provider, error) {
	p := &provider{
		name: mp.GetName(), issuer: mp.GetIssuer(), audiences: mp.GetAudiences(),
		skew: mp.GetClockSkew().AsDuration(), query: mp.GetQuery(), cookie: mp.GetCookie(),
		forwardToken: mp.GetForwardToken(),
	}
	if p.issuer == "" {
		return nil, errors.New("no issuer")
	}
	if h := mp.GetHeader(); h != "" {
		p.header = textproto.CanonicalMIMEHeaderKey(h)
		p.bearer = p.header == "Authorization"
	}
	if p.header == "" && p.query == "" && p.cookie == "" {
		return nil, errors.New("no header, query parameter or cookie to read the token from")
	}
	keys, err := ParseKeySet(mp.GetJwks())
	if err != nil {
		return nil, err
	}
	p.keys = keys
	for c, h := range mp.GetForwardClaims() {
		p.forward = append(p.forward, [2]string{c, textproto.CanonicalMIMEHeaderKey(h)})
	}
	slices.SortFunc(p.forward, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return p, nil
}

// ParseKeySet reads a JSON Web Key Set (RFC 7517) of at most MaxJWKSBytes
// and MaxKeys keys, and returns its public signature keys. Symmetric keys
// ("kty": "oct") and keys for encryption ("use": "enc") are refused; a
// private key stands for its public half. Empty src is no keys (every
// token then fails with ReasonUnknownKey).
func ParseKeySet(src []byte) ([]jose.JSONWebKey, error) {
	if len(src) == 0 {
		return nil, nil
	}
	if len(src) > MaxJWKSBytes {
		return nil, fmt.Errorf("the key set is %s, more than the %s allowed", inputlimit.Bytes(int64(len(src))), inputlimit.Bytes(MaxJWKSBytes))
	}
	if err := inputlimit.JSONDepth(src, MaxClaimsDepth); err != nil {
		return nil, fmt.Errorf("reading the key set: %w", err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(src, &set); err != nil {
		return nil, fmt.Errorf("reading the key set: %w; want a JSON Web Key Set, {\"keys\": [...]}", err)
	}
	if len(set.Keys) > MaxKeys {
		return nil, fmt.Errorf("the key set has %d keys, more than the %d allowed", len(set.Keys), MaxKeys)
	}
	var out []jose.JSONWebKey
	for i, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("reading key %d of the key set: %w", i, err)
		}
		if k.Use == "enc" {
			continue
		}
		switch k.Key.(type) {
		case []byte:
			return nil, fmt.Errorf("key %d (kid %q) of the key set is symmetric (kty oct): Weft accepts only asymmetric keys (RSA, EC, OKP), so that no shared secret is ever used", i, k.KeyID)
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		if !k.Valid() {
			return nil, fmt.Errorf("key %d (kid %q) of the key set is not a valid public key", i, k.KeyID)
		}
		if k.Algorithm != "" && !slices.Contains(Algorithms, jose.SignatureAlgorithm(k.Algorithm)) {
			return nil, fmt.Errorf("key %d (kid %q) of the key set is for algorithm %q; allowed: %v", i, k.KeyID, k.Algorithm, Algorithms)
		}
		out = append(out, k)
	}
	return out, nil
}

// Authenticate reads the token of each provider from r and verifies it.
// A token present and invalid is a Failure, whatever else the request
// carries; so is a request without a valid token of a required provider.
// It does not change r (see Forward).
func (v *Verifier) Authenticate(r *http.Request, now time.Time) Result {
	var res Result
	if v == nil {
		return res
	}
	type found struct {
		tok   string
		cands []*provider
	}
	var toks []*found
	for _, p := range v.providers {
		tok, f := p.extract(r)
		if f != nil {
			res.Failure = f
			return res
		}
		if tok == "" {
			continue
		}
		i := slices.IndexFunc(toks, func(x *found) bool { return x.tok == tok })
		if i < 0 {
			toks = append(toks, &found{tok: tok})
			i = len(toks) - 1
		}
		toks[i].cands = append(toks[i].cands, p)
	}
	for _, t := range toks {
		name, claims, f := verify(t.tok, t.cands, now)
		if f != nil {
			res.Failure = f
			return res
		}
		if res.Claims == nil {
			res.Claims = map[string]map[string]any{}
		}
		res.Claims[name] = claims
	}
	if len(v.required) > 0 {
		for _, n := range v.required {
			if res.Claims[n] != nil {
				return res
			}
		}
		res.Failure = &Failure{Provider: v.required[0], Reason: ReasonMissing,
			Detail: fmt.Sprintf("this service requires a token of %s: send it as %s", strings.Join(quoteAll(v.required), " or "), v.where(v.required[0]))}
	}
	return res
}

// where says where provider n reads its token, for a message.
func (v *Verifier) where(n string) string {
	for _, p := range v.providers {
		if p.name != n {
			continue
		}
		var w []string
		if p.bearer {
			w = append(w, `"Authorization: Bearer <token>"`)
		} else if p.header != "" {
			w = append(w, "header "+p.header)
		}
		if p.query != "" {
			w = append(w, "query parameter "+p.query)
		}
		if p.cookie != "" {
			w = append(w, "cookie "+p.cookie)
		}
		return strings.Join(w, " or ")
	}
	return "a bearer token"
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

// extract returns the token p reads from r, from whichever of its header,
// query parameter and cookie carry one. A token given twice in one place,
// or two different tokens in two places, is malformed: the application
// behind could read the one the verifier did not. Every spelling an
// application may decode to the same place counts: a query parameter name
// percent-encoded, a cookie value net/http would drop, a tab after Bearer.
func (p *provider) extract(r *http.Request) (string, *Failure) {
	bad := func(detail string) (string, *Failure) {
		return "", &Failure{Provider: p.name, Reason: ReasonMalformed, Detail: detail}
	}
	var tok, from string
	take := func(t, where string) *Failure {
		switch {
		case t == "":
		case tok == "":
			tok, from = t, where
		case t != tok:
			_, f := bad(fmt.Sprintf("a token is given both in %s and in %s; send one", from, where))
			return f
		}
		return nil
	}
	if p.header != "" {
		vals := headerValues(r.Header, p.header)
		if len(vals) > 1 {
			return bad(fmt.Sprintf("header %s is given %d times; send one", p.header, len(vals)))
		}
		if len(vals) == 1 {
			v := strings.TrimSpace(vals[0])
			// The scheme ends at the first space or tab (RFC 9110 11.4
			// says one space; applications split on any blank).
			scheme, rest := v, ""
			if i := strings.IndexAny(v, " \t"); i >= 0 {
				scheme, rest = v[:i], strings.TrimSpace(v[i+1:])
			}
			switch {
			case strings.EqualFold(scheme, "bearer"):
				if strings.ContainsAny(rest, " \t,") {
					return bad(fmt.Sprintf("header %s holds more than one token; send one", p.header))
				}
				if f := take(rest, "header "+p.header); f != nil {
					return "", f
				}
			case !p.bearer:
				if f := take(v, "header "+p.header); f != nil {
					return "", f
				}
			}
			// Another scheme (Basic...): not this provider's token.
		}
	}
	if p.query != "" && mayHoldParam(r.URL.RawQuery, p.query) {
		// ParseQuery keeps every pair it can decode, past one it cannot
		// (canon refuses such a query before the application sees it).
		q, _ := url.ParseQuery(r.URL.RawQuery)
		vals := q[p.query]
		if len(vals) > 1 {
			return bad(fmt.Sprintf("query parameter %s is given %d times; send one", p.query, len(vals)))
		}
		if len(vals) == 1 {
			if f := take(vals[0], "query parameter "+p.query); f != nil {
				return "", f
			}
		}
	}
	if p.cookie != "" {
		vals := rawCookies(r.Header, p.cookie)
		if len(vals) > 1 {
			return bad(fmt.Sprintf("cookie %s is given %d times; send one", p.cookie, len(vals)))
		}
		if len(vals) == 1 {
			parsed := r.CookiesNamed(p.cookie)
			if len(parsed) != 1 {
				return bad(fmt.Sprintf("cookie %s has a value that is not a cookie value (RFC 6265: no spaces, quotes, commas, semicolons or backslashes inside)", p.cookie))
			}
			if f := take(parsed[0].Value, "cookie "+p.cookie); f != nil {
				return "", f
			}
		}
	}
	return tok, nil
}

// headerValues returns the values of header name (canonical) in h, under
// every spelling an application may read as name: any case, and
// underscores for dashes (CGI-style servers read X_Jwt as X-Jwt).
func headerValues(h http.Header, name string) []string {
	vals := h[name]
	for k, v := range h {
		if k != name && sameHeader(k, name) {
			vals = append(slices.Clip(vals), v...)
		}
	}
	return vals
}

// sameHeader reports whether header names a and b are one to an
// application: equal but for case, or for underscores against dashes.
func sameHeader(a, b string) bool {
	return len(a) == len(b) && strings.EqualFold(strings.ReplaceAll(a, "_", "-"), strings.ReplaceAll(b, "_", "-"))
}

// mayHoldParam reports whether raw, a query string, may name parameter
// name: it does, or it has a percent-encoding that could spell it.
func mayHoldParam(raw, name string) bool {
	return strings.Contains(raw, name) || strings.Contains(raw, "%")
}

// rawCookies returns the values of the pairs named name in h's Cookie
// headers, as sent: also those net/http's cookie parser drops as invalid
// and an application might still read.
func rawCookies(h http.Header, name string) []string {
	var out []string
	for _, line := range h["Cookie"] {
		if !strings.Contains(line, name) {
			continue
		}
		for pair := range strings.SplitSeq(line, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if strings.TrimSpace(k) == name {
				out = append(out, v)
			}
		}
	}
	return out
}

// header is a token's JOSE header, read before the library parses it so
// that the refusal can say why.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// verify checks tok against the providers that found it and returns the
// one whose issuer it names, with its claims.
func verify(tok string, cands []*provider, now time.Time) (string, map[string]any, *Failure) {
	first := cands[0].name
	fail := func(prov, reason, detail string) (string, map[string]any, *Failure) {
		return "", nil, &Failure{Provider: prov, Reason: reason, Detail: detail}
	}
	if len(tok) > MaxTokenBytes {
		return fail(first, ReasonTooLarge, fmt.Sprintf("the token is %d bytes, more than the %d allowed", len(tok), MaxTokenBytes))
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fail(first, ReasonMalformed, "the token is not a JWT (three base64url parts separated by dots)")
	}
	hdrJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fail(first, ReasonMalformed, "the token's header is not base64url")
	}
	if err := inputlimit.JSONDepth(hdrJSON, MaxClaimsDepth); err != nil {
		return fail(first, ReasonTooLarge, "the token's header is nested too deep")
	}
	h, err := decodeHeader(hdrJSON)
	if err != nil {
		return fail(first, ReasonMalformed, "the token's header: "+err.Error())
	}
	if !slices.Contains(Algorithms, jose.SignatureAlgorithm(h.Alg)) {
		return fail(first, ReasonAlgorithm, fmt.Sprintf("the token is signed with %q; accepted: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA (never none or HS*)", h.Alg))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fail(first, ReasonMalformed, "the token's claims are not base64url")
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		reason := ReasonMalformed
		if errors.Is(err, inputlimit.ErrTooDeep) {
			reason = ReasonTooLarge
		}
		return fail(first, reason, "the token's claims: "+err.Error())
	}
	// The provider whose issuer the token names (unverified yet: its keys
	// verify it below).
	iss, _ := claims["iss"].(string)
	var p *provider
	for _, c := range cands {
		if c.issuer == iss {
			p = c
			break
		}
	}
	if p == nil {
		return fail(first, ReasonIssuer, fmt.Sprintf("the token's issuer %q is not %s", iss, issuers(cands)))
	}
	jws, err := jose.ParseSignedCompact(tok, Algorithms)
	if err != nil {
		return fail(p.name, ReasonMalformed, "parsing the token: "+err.Error())
	}
	keys := p.keysFor(h)
	if len(keys) == 0 {
		return fail(p.name, ReasonUnknownKey, fmt.Sprintf("no key of the provider's key set has kid %q and fits algorithm %s (were its keys rotated? the mesh reads them again every refresh)", h.Kid, h.Alg))
	}
	verified := false
	for _, k := range keys {
		if got, err := jws.Verify(k.Key); err == nil && bytes.Equal(got, payload) {
			verified = true
			break
		}
	}
	if !verified {
		return fail(p.name, ReasonSignature, "the token's signature does not verify")
	}
	if f := p.checkTimes(claims, now); f != nil {
		return "", nil, f
	}
	if len(p.audiences) > 0 && !audienceOK(claims["aud"], p.audiences) {
		return fail(p.name, ReasonAudience, fmt.Sprintf("the token's audience %v names none of %q", claims["aud"], p.audiences))
	}
	return p.name, claims, nil
}

func issuers(ps []*provider) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%q", p.issuer))
	}
	return strings.Join(out, " or ")
}

// decodeHeader reads a token's JOSE header: a JSON object naming no
// parameter twice, whose alg and kid (names compared exactly, as RFC 7515
// says and go-jose reads them) are strings. A registered name in another
// case ("ALG") is refused: a reader that folds case would take it.
func decodeHeader(src []byte) (header, error) {
	var h header
	if err := noDuplicateNames(src); err != nil {
		return h, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(src, &m); err != nil || m == nil {
		return h, errors.New("not a JSON object")
	}
	for k, raw := range m {
		var dst *string
		switch {
		case k == "alg":
			dst = &h.Alg
		case k == "kid":
			dst = &h.Kid
		case strings.EqualFold(k, "alg") || strings.EqualFold(k, "kid"):
			return h, fmt.Errorf("the parameter %q is %q in another case; names are case-sensitive", k, strings.ToLower(k))
		default:
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return h, fmt.Errorf("%s is not a string", k)
		}
	}
	return h, nil
}

// noDuplicateNames refuses JSON in which an object names a member twice
// (RFC 7515 4 and RFC 7519 4 say a parser must refuse it or take the
// last; readers differ, so a token is read one way by the verifier and
// another by the application).
func noDuplicateNames(src []byte) error {
	d := json.NewDecoder(bytes.NewReader(src))
	// For each open container: the names seen (nil for an array), and
	// whether the next token of an object is a name.
	type frame struct {
		names  map[string]bool
		isName bool
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errors.New("not JSON")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.names != nil && top.isName {
			if name, ok := tok.(string); ok {
				if top.names[name] {
					return fmt.Errorf("%q is named twice", name)
				}
				top.names[name] = true
				top.isName = false
				continue
			}
		}
		if top != nil && top.names != nil {
			top.isName = true // a value ends; the next is a name (or '}')
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{names: map[string]bool{}, isName: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].names != nil {
				stack[len(stack)-1].isName = true
			}
		}
	}
}

// decodeClaims reads a token's claims: a JSON object nested at most
// MaxClaimsDepth deep, naming no claim twice, numbers kept as written.
func decodeClaims(payload []byte) (map[string]any, error) {
	if err := inputlimit.JSONDepth(payload, MaxClaimsDepth); err != nil {
		return nil, err
	}
	if err := noDuplicateNames(payload); err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil || claims == nil {
		return nil, errors.New("not a JSON object")
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	return claims, nil
}

// keysFor returns the keys of p that may have signed a token with header
// h: its kid's (every key when the token names none), of a type and size
// that fit its algorithm.
func (p *provider) keysFor(h header) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range p.keys {
		if h.Kid != "" && k.KeyID != h.Kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != h.Alg {
			continue
		}
		if !keyFits(k, h.Alg) {
			continue
		}
		out = append(out, k)
	}
	return out
}

func (p *provider) checkTimes(claims map[string]any, now time.Time) *Failure {
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return &Failure{Provider: p.name, Reason: ReasonMalformed, Detail: "the token has no exp (expiry) claim, or not a number; Weft requires one"}
	}
	if now.After(exp.Add(p.skew)) {
		return &Failure{Provider: p.name, Reason: ReasonExpired, Detail: fmt.Sprintf("the token expired at %s", exp.UTC().Format(time.RFC3339))}
	}
	if v, present := claims["iat"]; present {
		if _, ok := numericDate(v); !ok {
			return &Failure{Provider: p.name, Reason: ReasonMalformed, Detail: "the token's iat claim is not a number of seconds since 1970"}
		}
	}
	if v, present := claims["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok {
			return &Failure{Provider: p.name, Reason: ReasonMalformed, Detail: "the token's nbf claim is not a number"}
		}
		if now.Add(p.skew).Before(nbf) {
			return &Failure{Provider: p.name, Reason: ReasonNotYetValid, Detail: fmt.Sprintf("the token is not valid before %s", nbf.UTC().Format(time.RFC3339))}
		}
	}
	return nil
}

// numericDate reads a JWT NumericDate (seconds since the epoch).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// audienceOK reports whether aud (a string or a list of them) names one of
// want.
func audienceOK(aud any, want []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(want, a)
	case []any:
		for _, e := range a {
			if s, ok := e.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	}
	return false
}
