package canon

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// What every HTTP listener does to a request before it routes or
// authorizes it (core/proxy's doc.go, "Canonical requests"): one spelling per request,
// so that a rule and the application read the same thing.

// BadRequest is a request the proxy refuses with 400 before any match:
// its method or path has a spelling that rules and applications could
// read differently. The message says what is wrong and what to send.
type BadRequest struct{ msg string }

func (e *BadRequest) Error() string { return e.msg }

// Refuse is a BadRequest that says msg.
func Refuse(msg string) *BadRequest { return &BadRequest{msg: msg} }

// Canonicalize checks r's method and puts r's path in canonical form
// (normalizePath), in place: r.URL.Path is the decoded canonical path,
// which rules match, and r.URL.RawPath its escaped form, which is what
// goes on to the next hop. The query is checked (checkQuery) and left as
// it came. An error is a *BadRequest.
func Canonicalize(r *http.Request) *BadRequest {
	if err := checkMethod(r.Method); err != nil {
		return err
	}
	if err := checkQuery(r.URL.RawQuery); err != nil {
		return err
	}
	raw, err := requestPath(r)
	if err != nil {
		return err
	}
	if raw == "*" {
		if r.Method != http.MethodOptions {
			return Refuse("the request target * is only for OPTIONS; send a path that begins with /")
		}
		return nil
	}
	canon, err := normalizePath(raw)
	if err != nil {
		return err
	}
	if canon == raw && r.URL.Path != "" {
		// net/http decoded raw into Path as normalizePath would have.
		return nil
	}
	r.URL.Path, r.URL.RawPath = unescapePath(canon), canon
	if r.URL.Path == canon {
		r.URL.RawPath = ""
	}
	return nil
}

// requestPath is r's path as the client spelled it, before any decoding:
// the path of the request target (origin form "/p?q", absolute form
// "http://h/p?q", or "*").
func requestPath(r *http.Request) (string, *BadRequest) {
	t := r.RequestURI
	if t == "" { // a request built in-process, not read from a client
		if r.URL.Path == "*" {
			return "*", nil
		}
		if p := r.URL.EscapedPath(); p != "" {
			return p, nil
		}
		return "/", nil
	}
	if t == "*" {
		return t, nil
	}
	if t[0] != '/' {
		// Absolute form: scheme "://" authority path. Anything else
		// (CONNECT's authority form) has no path to check.
		i := strings.Index(t, "://")
		if i < 0 {
			return "", Refuse("the request target has no path; send a path that begins with / (CONNECT is not proxied)")
		}
		t = t[i+3:]
		j := strings.IndexAny(t, "/?#")
		if j < 0 || t[j] != '/' {
			return "/", nil
		}
		t = t[j:]
	}
	if q := strings.IndexByte(t, '?'); q >= 0 {
		t = t[:q]
	}
	return t, nil
}

// checkQuery refuses a query that net/url cannot parse one way: one with
// a ";" (which some servers take for "&" and net/url refuses), or an
// invalid percent-encoding. net/http's reverse proxy would drop such
// parameters silently, and rules read the query as net/url parses it;
// a clear 400 is better than a request that lost a parameter on the way.
// The query is otherwise left as the client wrote it.
func checkQuery(q string) *BadRequest {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return Refuse("the query has a \";\"; separate parameters with & and write ; as %3B")
		case '%':
			if i+2 >= len(q) || unhex(q[i+1]) < 0 || unhex(q[i+2]) < 0 {
				return Refuse("the query has an invalid percent-encoding at byte " + strconv.Itoa(i) + "; write % as %25")
			}
			i += 2
		}
	}
	return nil
}

// standardMethods are the methods of RFC 9110 and PATCH (RFC 5789).
var standardMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch,
}

// checkMethod refuses a method that is not a token (RFC 9110 5.6.2), and
// one that spells a standard method in another case ("delete", "Get"):
// methods are case-sensitive, so a rule on DELETE does not hold for
// "delete", while some applications take it for DELETE.
func checkMethod(m string) *BadRequest {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch:
		return nil
	}
	if m == "" {
		return Refuse("the request has no method")
	}
	for i := 0; i < len(m); i++ {
		if !isTokenChar(m[i]) {
			return Refuse("the method " + QuoteForBody(m) + " is not an HTTP token; methods are letters, digits and !#$%&'*+-.^_`|~")
		}
	}
	for _, s := range standardMethods {
		if strings.EqualFold(m, s) {
			return Refuse("the method " + QuoteForBody(m) + " is " + s + " in another case; methods are case-sensitive: send " + s)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// normalizePath returns the canonical form of an escaped request path p:
//
//   - a percent-encoded unreserved character (ALPHA DIGIT - . _ ~) is
//     decoded ("%61" is "a", "%2e" is "."), every other percent-encoding
//     is upper case ("%c3" is "%C3"), and a byte that may not stand bare
//     in a path (RFC 3986 pchar) is percent-encoded;
//   - repeated slashes are one ("//a" is "/a");
//   - dot-segments are removed as RFC 3986 5.2.4 says ("/a/./b/../c" is
//     "/a/c"; ".." never climbs above "/").
//
// It refuses (*BadRequest) a path that does not begin with "/", an
// invalid percent-encoding, an encoded slash (%2F) or backslash (%5C), a
// backslash, NUL or any other control character, encoded or not, and a
// dot-segment with parameters ("..;x"), which some servers resolve as
// ".." and others as a name. A path that is already canonical is
// returned as it is, without allocating.
func normalizePath(p string) (string, *BadRequest) {
	if isCanonicalPath(p) {
		return p, nil
	}
	if p == "" || p[0] != '/' {
		return "", Refuse("the path " + QuoteForBody(p) + " does not begin with /")
	}
	// First the bytes: escapes decoded or upper-cased, refusals.
	b := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return "", Refuse("the path has an invalid percent-encoding at byte " + strconv.Itoa(i) + "; write % as %25")
			}
			v := byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			switch {
			case v == '/':
				return "", Refuse("the path has an encoded slash (%2F), which applications read as / or as part of a name; send / or a name without it")
			case v == '\\':
				return "", Refuse("the path has an encoded backslash (%5C), which some applications read as /; send / or a name without it")
			case v < 0x20 || v == 0x7f:
				return "", Refuse("the path has an encoded control character (%" + string(upperHex[v>>4]) + string(upperHex[v&15]) + "); paths carry no control characters")
			case isUnreserved(v):
				b = append(b, v)
			default:
				b = append(b, '%', upperHex[v>>4], upperHex[v&15])
			}
			continue
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return "", Refuse("the path has a control character; paths carry no control characters")
		case c == '\\':
			return "", Refuse("the path has a backslash, which some applications read as /; send / or a name without it")
		case c == '/' || isPchar(c):
			b = append(b, c)
		default:
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	// Then the segments: empty ones merged, dot-segments removed.
	out := make([]byte, 0, len(b))
	segs := 0 // segments in out
	rest := b[1:]
	for {
		seg := rest
		i := bytes.IndexByte(rest, '/')
		if i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		}
		dot := isDots(seg)
		switch {
		case len(seg) == 0 || dot == 1:
		case dot == 2:
			if segs > 0 {
				out = out[:bytes.LastIndexByte(out, '/')]
				segs--
			}
		case bytes.HasPrefix(seg, []byte(".;")) || bytes.HasPrefix(seg, []byte("..;")):
			return "", Refuse("the path has a dot-segment with parameters (" + QuoteForBody(string(seg)) + "), which servers resolve differently; send the path without it")
		default:
			out = append(out, '/')
			out = append(out, seg...)
			segs++
		}
		if i < 0 {
			if len(out) == 0 || len(seg) == 0 || dot > 0 {
				out = append(out, '/') // "/a/" and "/a/." end with a slash
			}
			return string(out), nil
		}
	}
}

// isDots is 1 for the segment ".", 2 for "..", else 0.
func isDots(seg []byte) int {
	switch string(seg) {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
}

// isCanonicalPath reports whether p is its own normalizePath, checking
// conservatively: false sends p to the careful path.
func isCanonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	start := 1 // of the current segment
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			seg := p[start:i]
			switch {
			case seg == "" && i < len(p): // "//"
				return false
			case seg == "." || seg == "..":
				return false
			case len(seg) > 1 && seg[0] == '.' && (seg[1] == ';' || seg[1] == '.' && len(seg) > 2 && seg[2] == ';'):
				return false
			}
			start = i + 1
			continue
		}
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
				return false
			}
			v := byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			if isUnreserved(v) || v == '/' || v == '\\' || v < 0x20 || v == 0x7f {
				return false
			}
			i += 2
			continue
		}
		if !isPchar(c) {
			return false
		}
	}
	return true
}

// isUnreserved: RFC 3986 unreserved.
func isUnreserved(c byte) bool { return byteClass[c]&classUnreserved != 0 }

// isPchar: RFC 3986 pchar, less '%' (pct-encoded is checked apart):
// unreserved, sub-delims, ':' and '@'.
func isPchar(c byte) bool { return byteClass[c]&classPchar != 0 }

const (
	classUnreserved = 1 << iota
	classPchar
)

// byteClass holds the classes of every byte: a look-up is cheaper than
// comparisons on the hot path (every byte of every request's path).
var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~", b) >= 0 {
			t[c] = classUnreserved | classPchar
		} else if strings.IndexByte("!$&'()*+,;=:@", b) >= 0 {
			t[c] = classPchar
		}
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// unescapePath decodes a canonical path (every '%' starts a valid
// escape).
func unescapePath(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			b = append(b, byte(unhex(p[i+1])<<4|unhex(p[i+2])))
			i += 2
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// matchPath is the path rules match: the decoded canonical path, with
// each segment's parameters (from ";" to the end of the segment, as in
// "/a;jsessionid=1/b") left out, as servers that read parameters (Tomcat,
// Jetty) leave them out before they route. A request for "/admin;x" is
// thus matched as "/admin" by every rule, while the application receives
// the path with its parameters. An encoded ";" (%3B) is part of a name.
func matchPath(u *url.URL) string {
	if strings.IndexByte(u.Path, ';') < 0 {
		return u.Path
	}
	esc := u.EscapedPath()
	b := make([]byte, 0, len(esc))
	for first := true; ; first = false {
		seg, rest, more := strings.Cut(esc, "/")
		esc = rest
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
			if seg == "" && more {
				continue // "/;x/" is no segment at all
			}
		}
		if !first {
			b = append(b, '/')
		}
		b = append(b, seg...)
		if !more {
			return unescapePath(string(b))
		}
	}
}

// QuoteForBody quotes client input for a refusal's body: at most 64
// bytes, escaped so that it cannot break a line.
func QuoteForBody(s string) string {
	const max = 64
	cut := ""
	if len(s) > max {
		s, cut = s[:max], "..."
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String() + cut
}
