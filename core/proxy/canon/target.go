package canon

import (
	"net/http"
	"net/url"
	"strings"
)

// Target applies Canonicalize's rules to a request read as bytes rather
// than as an http.Request (core/proxy/h1): method is the request's method
// and target its request target as the client sent it (origin form
// "/p?q", absolute form "http://h/p?q", or "*"). It returns the escaped
// canonical path that goes on to the next hop ("*" for an OPTIONS *) and
// the query as the client wrote it (without its "?"), or the same
// refusal Canonicalize gives. A target whose path is already canonical
// allocates nothing: path is then a substring of target.
func Target(method, target string) (path, query string, bad *BadRequest) {
	if err := checkMethod(method); err != nil {
		return "", "", err
	}
	// As net/url reads a request target: the query is what follows the
	// first "?", and it is checked before the path, as Canonicalize does.
	if i := strings.IndexByte(target, '?'); i >= 0 {
		query = target[i+1:]
	}
	if err := checkQuery(query); err != nil {
		return "", "", err
	}
	if target == "" {
		return "", "", Refuse("the request has no target; send a path that begins with /")
	}
	t := target
	if t == "*" {
		if method != http.MethodOptions {
			return "", "", Refuse("the request target * is only for OPTIONS; send a path that begins with /")
		}
		return "*", "", nil
	}
	if t[0] != '/' {
		// Absolute form (requestPath): scheme "://" authority path.
		i := strings.Index(t, "://")
		if i < 0 {
			return "", "", Refuse("the request target has no path; send a path that begins with / (CONNECT is not proxied)")
		}
		t = t[i+3:]
		if j := strings.IndexAny(t, "/?#"); j < 0 || t[j] != '/' {
			t = "/"
		} else {
			t = t[j:]
		}
	}
	if i := strings.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	p, err := normalizePath(t)
	if err != nil {
		return "", "", err
	}
	return p, query, nil
}

// SetPath puts p, a canonical escaped path (Target's), on u as
// Canonicalize leaves a request's URL: Path decoded, RawPath the escaped
// form when the two differ. Rules read the URL so set (Matcher.Match).
func SetPath(u *url.URL, p string) {
	u.Path, u.RawPath = unescapePath(p), p
	if u.Path == p {
		u.RawPath = ""
	}
}
