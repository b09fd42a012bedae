package canon

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// FuzzTargetMatchesCanonicalize holds Target to Canonicalize: for any
// method and request target net/http reads, both refuse, or both give the
// same decoded path and query, Target's escaped path being canonical. The byte-level engine (core/proxy/h1)
// relies on it.
//
//	go test -run '^$' -fuzz '^FuzzTargetMatchesCanonicalize$' -fuzztime 10s ./core/proxy/canon
func FuzzTargetMatchesCanonicalize(f *testing.F) {
	for _, s := range [][2]string{
		{"GET", "/a"}, {"GET", "/a//b/./c/../d"}, {"GET", "/%7e%61?x=1"}, {"GET", "/caf%c3%a9"},
		{"GET", "/a%2Fb"}, {"GET", "/a/..;/b"}, {"GET", "/q?a;b"}, {"GET", "/a%zz"},
		{"OPTIONS", "*"}, {"GET", "*"}, {"get", "/"}, {"PURGE", "/x"},
		{"GET", "http://h/p?q"}, {"GET", "http://h?q"}, {"GET", "http://h"}, {"GET", "https://h:8/a/../b"},
		{"GET", "/a;p=1/b"}, {"GET", "/\xff"}, {"GET", "/a\\b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		if strings.ContainsAny(method+target, " \r\n\t") || method == "" || target == "" {
			return
		}
		if l := strings.ToLower(target); target[0] != '/' && target != "*" && !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") {
			// Other schemes: core/proxy/h1 refuses them before Target.
			// (Canonicalize checks a path other than net/url's for
			// some: "A:/://" is checked as "/" and goes on as "/://".)
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
		if err != nil {
			return // not a request net/http reads: nothing to hold Target to
		}
		bad1 := Canonicalize(r)
		path, query, bad2 := Target(method, target)
		if (bad1 == nil) != (bad2 == nil) {
			t.Fatalf("%s %q: Canonicalize says %v, Target %v", method, target, bad1, bad2)
		}
		if bad1 != nil {
			if bad1.Error() != bad2.Error() {
				t.Fatalf("%s %q: Canonicalize says %q, Target %q", method, target, bad1, bad2)
			}
			return
		}
		if path == "*" {
			return
		}
		// The decoded paths (what rules match) are the same, and
		// Target's escaped path is canonical. The escaped forms may
		// differ: when Canonicalize changed a path and its decoded form
		// equals it, net/url re-escapes it on the way out ("//!0" goes
		// on as "/%210", "/!0" as "/!0"); Target keeps canon's form.
		if r.URL.Path != unescapePath(path) || r.URL.RawQuery != query {
			t.Fatalf("%s %q: Canonicalize gives %q ? %q, Target %q ? %q", method, target, r.URL.Path, r.URL.RawQuery, path, query)
		}
		if again, bad := normalizePath(path); bad != nil || again != path {
			t.Fatalf("%s %q: Target's path %q is not canonical (%q, %v)", method, target, path, again, bad)
		}
	})
}
