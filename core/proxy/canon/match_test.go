package canon

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
)

func sm(kind meshapi.MatchKind, v string) *meshapi.StringMatch {
	return &meshapi.StringMatch{Kind: kind, Value: v}
}

func TestRequestMatch(t *testing.T) {
	const (
		exact   = meshapi.MatchKind_MATCH_EXACT
		prefix  = meshapi.MatchKind_MATCH_PREFIX
		regex   = meshapi.MatchKind_MATCH_REGEX
		present = meshapi.MatchKind_MATCH_PRESENT
	)
	tests := []struct {
		name   string
		m      *meshapi.RouteMatch
		method string
		target string
		hdr    http.Header
		want   bool
	}{
		{"empty matches all", &meshapi.RouteMatch{}, "GET", "/x", nil, true},
		{"exact path", &meshapi.RouteMatch{Path: sm(exact, "/a")}, "GET", "/a", nil, true},
		{"exact path, longer", &meshapi.RouteMatch{Path: sm(exact, "/a")}, "GET", "/ab", nil, false},
		{"prefix", &meshapi.RouteMatch{Path: sm(prefix, "/a/")}, "GET", "/a/b", nil, true},
		{"prefix, query ignored", &meshapi.RouteMatch{Path: sm(prefix, "/a/")}, "GET", "/a/?x=1", nil, true},
		{"regex anchored", &meshapi.RouteMatch{Path: sm(regex, "/v[0-9]")}, "GET", "/v1x", nil, false},
		{"regex", &meshapi.RouteMatch{Path: sm(regex, "/v[0-9]")}, "GET", "/v1", nil, true},
		{"regex alternation anchored", &meshapi.RouteMatch{Path: sm(regex, "/a|/b")}, "GET", "/bx", nil, false},
		{"method", &meshapi.RouteMatch{Methods: []string{"GET", "HEAD"}}, "HEAD", "/", nil, true},
		{"other method", &meshapi.RouteMatch{Methods: []string{"GET"}}, "POST", "/", nil, false},
		{"header exact, any value", &meshapi.RouteMatch{Headers: []*meshapi.KeyMatch{{Name: "x-a", Match: sm(exact, "2")}}}, "GET", "/", http.Header{"X-A": {"1", "2"}}, true},
		{"header missing", &meshapi.RouteMatch{Headers: []*meshapi.KeyMatch{{Name: "x-a", Match: sm(exact, "2")}}}, "GET", "/", nil, false},
		{"header present", &meshapi.RouteMatch{Headers: []*meshapi.KeyMatch{{Name: "x-a", Match: sm(present, "")}}}, "GET", "/", http.Header{"X-A": {""}}, true},
		{"header absent, inverted", &meshapi.RouteMatch{Headers: []*meshapi.KeyMatch{{Name: "x-a", Match: sm(present, ""), Invert: true}}}, "GET", "/", nil, true},
		{"header prefix inverted", &meshapi.RouteMatch{Headers: []*meshapi.KeyMatch{{Name: "x-user", Match: sm(prefix, "test-"), Invert: true}}}, "GET", "/", http.Header{"X-User": {"test-1"}}, false},
		{"query exact", &meshapi.RouteMatch{Query: []*meshapi.KeyMatch{{Name: "v", Match: sm(exact, "2")}}}, "GET", "/?v=2", nil, true},
		{"query regex", &meshapi.RouteMatch{Query: []*meshapi.KeyMatch{{Name: "v", Match: sm(regex, "[0-9]+")}}}, "GET", "/?v=2a", nil, false},
		{"all conditions", &meshapi.RouteMatch{Path: sm(prefix, "/api"), Methods: []string{"PUT"}, Query: []*meshapi.KeyMatch{{Name: "q", Match: sm(present, "")}}}, "PUT", "/api/x?q", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Compile(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.hdr {
				r.Header[k] = v
			}
			if got := m.Match(r, nil); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := Compile(&meshapi.RouteMatch{Path: sm(regex, "(")}); err == nil {
		t.Error("a bad regular expression compiled")
	}
}

// FuzzRouteMatch compiles arbitrary matches and runs them on arbitrary
// requests: no panic, and an exact or prefix match of a path holds for
// that path (a path without ";").
func FuzzRouteMatch(f *testing.F) {
	f.Add("/a", int32(1), "x-a", "1", "/a", "v=1")
	f.Add("/v[0-9]+", int32(3), "x-b", "", "/v12", "")
	f.Add("(", int32(3), "", "", "/", "a=%zz")
	f.Fuzz(func(t *testing.T, pattern string, kind int32, hname, hval, path, query string) {
		m := &meshapi.RouteMatch{
			Path:    sm(meshapi.MatchKind(kind%5), pattern),
			Headers: []*meshapi.KeyMatch{{Name: "x-h", Match: sm(meshapi.MatchKind(kind%5), hval)}},
			Query:   []*meshapi.KeyMatch{{Name: "v", Match: sm(meshapi.MatchKind(kind%5), pattern)}},
		}
		cm, err := Compile(m)
		if err != nil {
			return
		}
		r, err := http.NewRequest("GET", "http://x/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.URL.Path, r.URL.RawQuery = path, query
		if hname != "" && !strings.ContainsAny(hname, "\r\n:") {
			r.Header.Add(hname, hval)
		}
		cm.Match(r, nil)
		pathOnly := &Matcher{path: cm.path}
		r.URL.Path = pattern
		// A pattern with ";" never holds: rules see the path without its
		// segment parameters, and the policy compiler refuses such
		// patterns ("Path parameters in a path match").
		if k := m.Path.Kind; (k == meshapi.MatchKind_MATCH_EXACT || k == meshapi.MatchKind_MATCH_PREFIX) && !strings.Contains(pattern, ";") && !pathOnly.Match(r, nil) {
			t.Fatalf("%v match of %q does not hold for the path %q", k, pattern, pattern)
		}
	})
}
