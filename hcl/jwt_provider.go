package policyhcl

import (
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// Bounds of the jwt_provider block.
const (
	MinJWKSRefresh   = time.Second
	MaxJWKSRefresh   = 24 * time.Hour
	MaxJWTClockSkew  = 5 * time.Minute
	maxJWTAudiences  = 32
	maxForwardClaims = 32
	maxJWTStringLen  = 1024
)

// jwtProvider is a decoded jwt_provider block: an issuer of end-user
// JSON Web Tokens that services require (a service's jwt block) and
// permissions match on (a permission's jwt block).
//
//	jwt_provider "corp" {
//	  issuer         = "https://idp.example.com"   # the tokens' iss (required)
//	  audiences      = ["shop"]                    # the token's aud must name one; none: any
//	  jwks_url       = "https://idp.example.com/.well-known/jwks.json" # or:
//	  # jwks_file    = "corp.jwks.json"            # relative to this file
//	  jwks_refresh   = "5m"                        # how often the controller reads the keys again (1s-24h)
//	  clock_skew     = "30s"                       # allowed on exp and nbf (at most 5m)
//	  forward_claims = { sub = "X-User", role = "X-Role" } # claim -> header for the app
//	  header         = "Authorization"             # where the token is: "Bearer <token>" (the default);
//	  # query        = "access_token"              # a query parameter;
//	  # cookie       = "session"                   # a cookie
//	  forward_token  = false                       # pass the token on to the app (default: removed)
//	}
//
// The controller reads the keys (the file, or the URL with HTTPS; plain
// HTTP only from a loopback address) and sends them in every sidecar's
// configuration: a sidecar never calls the identity provider, and a key
// rotation reaches the sidecars within jwks_refresh, without a restart
// (core/jwks). Only asymmetric algorithms are accepted (RS*, PS*, ES*,
// EdDSA); providers with a shared secret (HS*) are not supported.
type jwtProvider struct {
	policy.JWTProvider
	NameRange hcl.Range
	DeclRange hcl.Range
}

var jwtProviderSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "issuer", Required: true}, {Name: "audiences"}, {Name: "jwks_file"}, {Name: "jwks_url"},
		{Name: "jwks_refresh"}, {Name: "clock_skew"}, {Name: "forward_claims"},
		{Name: "header"}, {Name: "query"}, {Name: "cookie"}, {Name: "forward_token"},
	},
}

func decodeJWTProviderBlock(block *hcl.Block) (*jwtProvider, hcl.Diagnostics) {
	jp := &jwtProvider{NameRange: block.LabelRanges[0], DeclRange: block.DefRange}
	jp.Name = block.Labels[0]
	var diags hcl.Diagnostics
	if !model.ValidName(jp.Name) {
		diags = append(diags, errorAt(jp.NameRange, "Invalid JWT provider name",
			fmt.Sprintf("The JWT provider name %q is not a DNS label. Use lower-case letters, digits and dashes, such as \"corp\".", jp.Name)))
	}
	content, d := block.Body.Content(jwtProviderSchema)
	diags = append(diags, d...)
	str := func(name string) (string, *hcl.Attribute) {
		attr, ok := content.Attributes[name]
		if !ok {
			return "", nil
		}
		s, set, d := decodeString(attr)
		diags = append(diags, d...)
		if !set {
			return "", nil
		}
		if len(s) > maxJWTStringLen || s == "" {
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid "+name,
				fmt.Sprintf("The %s is empty or longer than %d bytes. Give a value or remove the argument.", name, maxJWTStringLen)))
			return "", nil
		}
		return s, attr
	}
	jp.Issuer, _ = str("issuer")
	if attr, ok := content.Attributes["audiences"]; ok {
		auds, d := decodeStringList(attr)
		diags = append(diags, d...)
		if len(auds) > maxJWTAudiences {
			diags = append(diags, errorAt(attr.Expr.Range(), "Too many audiences",
				fmt.Sprintf("The provider lists %d audiences; at most %d are allowed.", len(auds), maxJWTAudiences)))
		} else {
			jp.Audiences = auds
		}
	}
	file, fileAttr := str("jwks_file")
	rawURL, urlAttr := str("jwks_url")
	switch {
	case fileAttr != nil && urlAttr != nil:
		diags = append(diags, errorAt(urlAttr.Range, "Two key sources",
			fmt.Sprintf("The JWT provider %q has both jwks_file and jwks_url. Give one: the file the controller reads, or the URL it fetches.", jp.Name)))
	case fileAttr != nil:
		if !filepath.IsAbs(file) {
			file = filepath.Join(filepath.Dir(block.DefRange.Filename), file)
		}
		jp.JWKSFile = file
	case urlAttr != nil:
		if why := checkJWKSURL(rawURL); why != "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Invalid jwks_url",
				Detail: fmt.Sprintf("The jwks_url %q %s. Give the identity provider's key set URL, such as \"https://idp.example.com/.well-known/jwks.json\" "+
					"(plain http only on a loopback address).", rawURL, why),
				Subject: urlAttr.Expr.Range().Ptr(), Context: urlAttr.Range.Ptr(),
			})
		} else {
			jp.JWKSURL = rawURL
		}
	default:
		if len(diags) == 0 {
			diags = append(diags, errorAt(block.DefRange, "Missing keys",
				fmt.Sprintf("The JWT provider %q has no keys. Set jwks_url to the identity provider's key set URL, or jwks_file to a file that holds it.", jp.Name)))
		}
	}
	for name, dst := range map[string]*time.Duration{"jwks_refresh": &jp.JWKSRefresh, "clock_skew": &jp.ClockSkew} {
		attr, ok := content.Attributes[name]
		if !ok {
			continue
		}
		v, set, d := decodeDuration(attr)
		diags = append(diags, d...)
		if !set {
			continue
		}
		lo, hi := MinJWKSRefresh, MaxJWKSRefresh
		if name == "clock_skew" {
			lo, hi = time.Nanosecond, MaxJWTClockSkew
		}
		if v < lo || v > hi {
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid "+name,
				fmt.Sprintf("The %s %s is out of range: give a duration from %s to %s.", name, v, lo, hi)))
			continue
		}
		*dst = v
	}
	if attr, ok := content.Attributes["forward_claims"]; ok {
		m, d := decodeStringMap(attr)
		diags = append(diags, d...)
		diags = append(diags, checkForwardClaims(attr, m)...)
		if !diags.HasErrors() {
			jp.ForwardClaims = m
		}
	}
	var headerAttr *hcl.Attribute
	jp.Header, headerAttr = str("header")
	if headerAttr != nil && !validHeaderName(jp.Header) {
		diags = append(diags, errorAt(headerAttr.Expr.Range(), "Invalid header", fmt.Sprintf("%q is not a header name.", jp.Header)))
	}
	jp.Query, _ = str("query")
	jp.Cookie, _ = str("cookie")
	if jp.Header == "" && jp.Query == "" && jp.Cookie == "" {
		jp.Header = "Authorization"
	}
	if attr, ok := content.Attributes["forward_token"]; ok {
		b, _, d := decodeBool(attr)
		diags = append(diags, d...)
		jp.ForwardToken = b
	}
	return jp, diags
}

// checkJWKSURL says what is wrong with a key set URL, or "".
func checkJWKSURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "is not an absolute URL"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); (ip != nil && ip.IsLoopback()) || h == "localhost" {
			return ""
		}
		return "uses plain http to a host that is not loopback: anyone on the path could replace the keys, so use https"
	}
	return "is neither https nor http"
}

// jwtReservedHeaders are headers a claim may not be forwarded as: the mesh's
// own (and every X-Weft- and X-Forwarded- one), those that frame the
// request or carry credentials, and Forwarded; compared with underscores
// read as dashes, as CGI-style servers read them.
var jwtReservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Te", "Trailer", "Upgrade",
	"Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Http2-Settings", "Authorization", "Cookie", "Forwarded"}

func checkForwardClaims(attr *hcl.Attribute, m map[string]string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if len(m) > maxForwardClaims {
		return hcl.Diagnostics{errorAt(attr.Expr.Range(), "Too many forwarded claims",
			fmt.Sprintf("forward_claims names %d claims; at most %d are allowed.", len(m), maxForwardClaims))}
	}
	claims := make([]string, 0, len(m))
	for c := range m {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	seen := map[string]string{}
	for _, c := range claims {
		h := textproto.CanonicalMIMEHeaderKey(m[c])
		dashed := textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(m[c], "_", "-"))
		switch {
		case c == "" || len(c) > maxJWTStringLen:
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid claim name", "A claim name in forward_claims is empty or too long."))
		case !validHeaderName(m[c]):
			diags = append(diags, errorAt(attr.Expr.Range(), "Invalid header",
				fmt.Sprintf("Claim %q is forwarded as %q, which is not a header name. Use letters, digits and dashes, such as \"X-User\".", c, m[c])))
		case strings.HasPrefix(dashed, "X-Weft-") || strings.HasPrefix(dashed, "X-Forwarded-") || containsFold(jwtReservedHeaders, dashed):
			diags = append(diags, errorAt(attr.Expr.Range(), "Reserved header",
				fmt.Sprintf("Claim %q is forwarded as %s, a header the mesh or HTTP owns (underscores read as dashes). Use a header of your own, such as \"X-User\".", c, h)))
		case seen[dashed] != "":
			diags = append(diags, errorAt(attr.Expr.Range(), "Duplicate forwarded header",
				fmt.Sprintf("Claims %q and %q are both forwarded as %s. Give each its own header.", seen[dashed], c, h)))
		default:
			seen[dashed] = c
		}
	}
	return diags
}

func containsFold(xs []string, s string) bool {
	for _, x := range xs {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// validHeaderName reports whether s is an HTTP header name (an RFC 9110
// token).
func validHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("!#$%&'*+-.^_`|~", c):
		default:
			return false
		}
	}
	return true
}

// checkJWTProviders reports duplicate providers and returns them by name.
func checkJWTProviders(ps []*jwtProvider) (map[string]*jwtProvider, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	byName := map[string]*jwtProvider{}
	for _, p := range ps {
		if prev, dup := byName[p.Name]; dup {
			diags = append(diags, errorAt(p.NameRange, "Duplicate JWT provider",
				fmt.Sprintf("A JWT provider %q is already declared at %s. Declare each provider once.", p.Name, at(prev.DeclRange))))
			continue
		}
		byName[p.Name] = p
	}
	return byName, diags
}

// unknownJWTProvider is the diagnostic for a reference to no provider.
func unknownJWTProvider(name string, rng hcl.Range, declared map[string]*jwtProvider) *hcl.Diagnostic {
	names := make([]string, 0, len(declared))
	for n := range declared {
		names = append(names, n)
	}
	sort.Strings(names)
	hint := "No jwt_provider block is declared: add one."
	if len(names) > 0 {
		hint = "Declared: " + quoteList(names, "and") + "."
		if s := suggest(name, names); s != "" {
			hint += fmt.Sprintf(" Did you mean %q?", s)
		}
	}
	return errorAt(rng, "Unknown JWT provider", fmt.Sprintf("No jwt_provider %q is declared. %s", name, hint))
}
