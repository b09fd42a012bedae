package canon

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in, want string
		refused  string // part of the refusal; "" when want holds
	}{
		{in: "/", want: "/"},
		{in: "/admin", want: "/admin"},
		{in: "/a/b/", want: "/a/b/"},
		{in: "/users/%C3%A9", want: "/users/%C3%A9"},
		{in: "/a%20b", want: "/a%20b"},
		{in: "/a:b@c!$&'()*+,;=", want: "/a:b@c!$&'()*+,;="},
		// Repeated slashes.
		{in: "//admin", want: "/admin"},
		{in: "/a//b///c", want: "/a/b/c"},
		{in: "/a//", want: "/a/"},
		// Dot-segments, RFC 3986 5.2.4.
		{in: "/./admin", want: "/admin"},
		{in: "/x/../admin", want: "/admin"},
		{in: "/a/b/c/./../../g", want: "/a/g"},
		{in: "/../admin", want: "/admin"},
		{in: "/../../", want: "/"},
		{in: "/a/..", want: "/"},
		{in: "/a/b/..", want: "/a/"},
		{in: "/a/.", want: "/a/"},
		{in: "/.", want: "/"},
		{in: "/...", want: "/..."},
		{in: "/.a/..b/", want: "/.a/..b/"},
		// Unreserved characters decoded, the rest in upper case.
		{in: "/%61dmin", want: "/admin"},
		{in: "/%2e%2e/admin", want: "/admin"},
		{in: "/%2E%2E/admin", want: "/admin"},
		{in: "/x/%2e%2E/admin", want: "/admin"},
		{in: "/x/.%2e/admin", want: "/admin"},
		{in: "/%2e/admin", want: "/admin"},
		{in: "/%7e%2d%5f%30", want: "/~-_0"},
		{in: "/users/%c3%a9", want: "/users/%C3%A9"},
		{in: "/%2561dmin", want: "/%2561dmin"}, // "%25" is "%": decoded once by the application, "/%61dmin"
		{in: "/a%3bb", want: "/a%3Bb"},
		// Bytes that may not stand bare are encoded.
		{in: "/a\"b", want: "/a%22b"},
		{in: "/a#b", want: "/a%23b"},
		{in: "/é", want: "/%C3%A9"},
		{in: "/{x}|[y]", want: "/%7Bx%7D%7C%5By%5D"},
		// Refusals.
		{in: "", refused: "does not begin with /"},
		{in: "admin", refused: "does not begin with /"},
		{in: "%2Fadmin", refused: "does not begin with /"},
		{in: "/admin%2fx", refused: "encoded slash"},
		{in: "/x%2F..%2Fadmin", refused: "encoded slash"},
		{in: "/x%5c..%5cadmin", refused: "encoded backslash"},
		{in: "/x\\..\\admin", refused: "backslash"},
		{in: "/admin%00", refused: "control character (%00)"},
		{in: "/admin%0a", refused: "control character (%0A)"},
		{in: "/admin%0D", refused: "control character (%0D)"},
		{in: "/admin%7f", refused: "control character (%7F)"},
		{in: "/admin\x00", refused: "control character"},
		{in: "/admin\n", refused: "control character"},
		{in: "/admin\t", refused: "control character"},
		{in: "/%zz", refused: "invalid percent-encoding"},
		{in: "/%2", refused: "invalid percent-encoding"},
		{in: "/%", refused: "invalid percent-encoding"},
		{in: "/x/..;/admin", refused: "dot-segment with parameters"},
		{in: "/x/.;x/admin", refused: "dot-segment with parameters"},
		{in: "/x/%2e%2e;/admin", refused: "dot-segment with parameters"},
	}
	for _, tt := range tests {
		t.Run(strings.ToValidUTF8(tt.in, "?"), func(t *testing.T) {
			got, err := normalizePath(tt.in)
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.msg, tt.refused) {
					t.Fatalf("normalizePath(%q) = %q, %v; want a refusal naming %q", tt.in, got, err, tt.refused)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("normalizePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if again, err := normalizePath(got); err != nil || again != got {
				t.Errorf("normalizing %q again gave %q, %v", got, again, err)
			}
		})
	}
}

// TestNormalizeCanonicalPathDoesNotAllocate: the common case, a path
// already canonical, costs no allocation.
func TestNormalizeCanonicalPathDoesNotAllocate(t *testing.T) {
	for _, p := range []string{"/", "/api/v1/users/1234/orders", "/users/%C3%A9/", "/a;b=c"} {
		if n := testing.AllocsPerRun(100, func() { normalizePath(p) }); n != 0 {
			t.Errorf("normalizePath(%q): %v allocations, want 0", p, n)
		}
	}
	r := httptest.NewRequest("GET", "/api/v1/users?page=2&q=%C3%A9", nil)
	if n := testing.AllocsPerRun(100, func() { Canonicalize(r) }); n != 0 {
		t.Errorf("canonicalRequest of a canonical request: %v allocations, want 0", n)
	}
}

func TestCheckMethod(t *testing.T) {
	for _, tt := range []struct {
		method string
		ok     bool
	}{
		{"GET", true}, {"DELETE", true}, {"PATCH", true}, {"PROPFIND", true}, {"M-SEARCH", true},
		{"delete", false}, {"Delete", false}, {"dElEtE", false}, {"get", false}, {"Options", false},
		{"patch", false}, {"", false}, {"GE T", false}, {"GET\x00", false}, {"DEL(ETE", false}, {"é", false},
	} {
		t.Run(tt.method, func(t *testing.T) {
			if err := checkMethod(tt.method); (err == nil) != tt.ok {
				t.Errorf("checkMethod(%q) = %v, want ok %v", tt.method, err, tt.ok)
			}
		})
	}
}

func TestCanonicalRequest(t *testing.T) {
	tests := []struct {
		method, target  string
		path, rawPath   string // after
		query, refusal  string
		requestURIBlank bool // a request built in-process
	}{
		{method: "GET", target: "/admin?x=1", path: "/admin", query: "x=1"},
		{method: "GET", target: "/%61dmin", path: "/admin"},
		{method: "GET", target: "/x/../admin?a=%2e%2e", path: "/admin", query: "a=%2e%2e"},
		{method: "GET", target: "/a%20b/../c%2fd", refusal: "encoded slash"},
		{method: "GET", target: "/users/%c3%a9", path: "/users/é", rawPath: "/users/%C3%A9"},
		{method: "GET", target: "/a%3bb", path: "/a;b", rawPath: "/a%3Bb"},
		{method: "GET", target: "http://api/%61dmin?q", path: "/admin", query: "q"},
		{method: "GET", target: "http://api", path: "/"},
		{method: "OPTIONS", target: "*", path: "*"},
		{method: "GET", target: "*", refusal: "only for OPTIONS"},
		{method: "delete", target: "/x", refusal: "case-sensitive"},
		{method: "GET", target: "/%2e%2e/admin", path: "/admin", requestURIBlank: true},
		{method: "GET", target: "/a?x=1;y=2", refusal: "the query has a \";\""},
		{method: "GET", target: "/a?x=%zz", refusal: "invalid percent-encoding"},
		{method: "GET", target: "/a?x=%4", refusal: "invalid percent-encoding"},
		{method: "GET", target: "/a?x=%41%2f+b&&=", path: "/a", query: "x=%41%2f+b&&="},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Method = tt.method
			u, err := url.ParseRequestURI(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			r.URL, r.RequestURI = u, tt.target
			if tt.requestURIBlank {
				r.RequestURI = ""
			}
			err2 := Canonicalize(r)
			if tt.refusal != "" {
				if err2 == nil || !strings.Contains(err2.msg, tt.refusal) {
					t.Fatalf("got %v, want a refusal naming %q", err2, tt.refusal)
				}
				return
			}
			if err2 != nil {
				t.Fatal(err2)
			}
			if r.URL.Path != tt.path || r.URL.RawPath != tt.rawPath || r.URL.RawQuery != tt.query {
				t.Errorf("path %q raw %q query %q; want %q %q %q", r.URL.Path, r.URL.RawPath, r.URL.RawQuery, tt.path, tt.rawPath, tt.query)
			}
			// The next hop gets the canonical path.
			if want, _ := normalizePath(r.URL.EscapedPath()); tt.path != "*" && r.URL.EscapedPath() != want {
				t.Errorf("the next hop would get %q, want the canonical %q", r.URL.EscapedPath(), want)
			}
		})
	}
}

func TestMatchPath(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"/admin", "/admin"},
		{"/admin;x=1", "/admin"},
		{"/admin;jsessionid=1/users;v=2", "/admin/users"},
		{"/a/;x/b", "/a/b"},
		{"/a/;x", "/a/"},
		{"/a%3Bx", "/a;x"}, // an encoded ";" is part of the name
		{"/%C3%A9;p", "/é"},
	} {
		u, err := url.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := matchPath(u); got != tt.want {
			t.Errorf("matchPath(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// FuzzNormalizePath: normalizePath never panics; what it returns begins
// with "/", has no empty, "." or ".." segment, no control character and
// no encoded slash, and is its own normal form; when the quick check
// calls a path canonical, the careful path agrees.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "//admin", "/./admin", "/x/../admin", "/%2e%2e/admin", "/%61dmin",
		"/a%2fb", "/a%5c", "/%00", "/x/..;/a", "/a/b/../../..", "/é", "/%c3%a9", "/%", "*", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := normalizePath(p)
		if isCanonicalPath(p) && (err != nil || got != p) {
			t.Fatalf("isCanonicalPath(%q) but normalizePath gives %q, %v", p, got, err)
		}
		if err != nil {
			if err.msg == "" {
				t.Fatalf("refusal of %q without a reason", p)
			}
			return
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("normalizePath(%q) = %q does not begin with /", p, got)
		}
		segs := strings.Split(got[1:], "/")
		for i, s := range segs {
			if s == "." || s == ".." || (s == "" && i < len(segs)-1) {
				t.Fatalf("normalizePath(%q) = %q has segment %q", p, got, s)
			}
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c >= 0x7f || c == '\\' {
				t.Fatalf("normalizePath(%q) = %q has byte %#x", p, got, c)
			}
		}
		if strings.Contains(strings.ToUpper(got), "%2F") || strings.Contains(strings.ToUpper(got), "%5C") {
			t.Fatalf("normalizePath(%q) = %q keeps an encoded slash", p, got)
		}
		again, err := normalizePath(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", p, got, again, err)
		}
		if !isCanonicalPath(got) {
			t.Fatalf("normalizePath(%q) = %q, which the quick check does not call canonical", p, got)
		}
		// The decoded form has no dot-segment either: the application
		// decodes once and finds none to resolve.
		for _, s := range strings.Split(unescapePath(got), "/") {
			if s == "." || s == ".." {
				t.Fatalf("normalizePath(%q) = %q decodes to a dot-segment", p, got)
			}
		}
	})
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"canonical", "/api/v1/users/1234/orders"},
		{"dirty", "/api//v1/./users/%31234/x/../orders"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				normalizePath(bc.path)
			}
		})
	}
}
