package canon

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/weftmesh/weft/core/meshapi"
)

// Matcher is a compiled meshapi.RouteMatch: every condition must
// hold.
type Matcher struct {
	path    *stringMatcher // nil: any path
	methods []string       // empty: any method
	headers []keyMatcher
	query   []keyMatcher
}

type stringMatcher struct {
	kind  meshapi.MatchKind
	value string
	re    *regexp.Regexp
}

type keyMatcher struct {
	name   string
	m      *stringMatcher // nil: present
	invert bool
}

// Compile compiles m; a nil m matches every request.
func Compile(m *meshapi.RouteMatch) (*Matcher, error) {
	rm := &Matcher{methods: m.GetMethods()}
	var err error
	if rm.path, err = compileString(m.GetPath()); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	for _, h := range m.GetHeaders() {
		km, err := compileKey(h)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", h.GetName(), err)
		}
		km.name = http.CanonicalHeaderKey(km.name)
		rm.headers = append(rm.headers, km)
	}
	for _, q := range m.GetQuery() {
		km, err := compileKey(q)
		if err != nil {
			return nil, fmt.Errorf("query parameter %q: %w", q.GetName(), err)
		}
		rm.query = append(rm.query, km)
	}
	return rm, nil
}

func compileKey(k *meshapi.KeyMatch) (keyMatcher, error) {
	if k.GetName() == "" {
		return keyMatcher{}, fmt.Errorf("no name")
	}
	sm, err := compileString(k.GetMatch())
	if err != nil {
		return keyMatcher{}, err
	}
	if sm != nil && sm.kind == meshapi.MatchKind_MATCH_PRESENT {
		sm = nil
	}
	return keyMatcher{name: k.GetName(), m: sm, invert: k.GetInvert()}, nil
}

func compileString(m *meshapi.StringMatch) (*stringMatcher, error) {
	switch m.GetKind() {
	case meshapi.MatchKind_MATCH_ANY:
		return nil, nil
	case meshapi.MatchKind_MATCH_EXACT, meshapi.MatchKind_MATCH_PREFIX, meshapi.MatchKind_MATCH_PRESENT:
		return &stringMatcher{kind: m.GetKind(), value: m.GetValue()}, nil
	case meshapi.MatchKind_MATCH_REGEX:
		re, err := regexp.Compile("^(?:" + m.GetValue() + ")$")
		if err != nil {
			return nil, fmt.Errorf("compiling regular expression: %w", err)
		}
		return &stringMatcher{kind: m.GetKind(), value: m.GetValue(), re: re}, nil
	}
	return nil, fmt.Errorf("unknown match kind %d", m.GetKind())
}

func (s *stringMatcher) matches(v string) bool {
	switch s.kind {
	case meshapi.MatchKind_MATCH_EXACT:
		return v == s.value
	case meshapi.MatchKind_MATCH_PREFIX:
		return strings.HasPrefix(v, s.value)
	case meshapi.MatchKind_MATCH_REGEX:
		return s.re.MatchString(v)
	}
	return true
}

// matchValues: present when values is not empty; otherwise any value
// matching.
func (k *keyMatcher) matchValues(values []string) bool {
	ok := len(values) > 0
	if ok && k.m != nil {
		ok = slices.ContainsFunc(values, k.m.matches)
	}
	return ok != k.invert
}

// match reports whether r meets every condition. query is r's parsed
// query, or nil to parse it here when needed. The path matched is
// matchPath's: decoded, without segment parameters; listeners put it in
// canonical form first (canonicalRequest). Methods are compared as they
// are spelled (RFC 9110: case-sensitive); listeners refuse another case
// of a standard method. Header names are matched in any case (net/http
// keeps them in canonical case); every value of a header or query
// parameter is a candidate, and the inbound refuses a request that
// repeats one its rules read (inbound.checkRuleInputs).
func (m *Matcher) Match(r *http.Request, query url.Values) bool {
	if m.path != nil && !m.path.matches(matchPath(r.URL)) {
		return false
	}
	if len(m.methods) > 0 && !slices.Contains(m.methods, r.Method) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matchValues(r.Header.Values(m.headers[i].name)) {
			return false
		}
	}
	if len(m.query) > 0 && query == nil {
		query = r.URL.Query()
	}
	for i := range m.query {
		if !m.query[i].matchValues(query[m.query[i].name]) {
			return false
		}
	}
	return true
}

// inputs adds the header names (canonical) and query parameter names m
// reads to headers and query.
func (m *Matcher) Inputs(headers, query map[string]bool) {
	for _, h := range m.headers {
		headers[h.name] = true
	}
	for _, q := range m.query {
		query[q.name] = true
	}
}
