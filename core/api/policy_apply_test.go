package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/state"
)

// policyStore keeps applied versions in memory, with the state's
// check-index rule.
type policyStore struct {
	versions []state.PolicyVersion
	next     uint64
}

func (s *policyStore) ApplyPolicy(req state.PolicyApply) (state.PolicyVersion, bool, error) {
	var cur uint64
	if n := len(s.versions); n > 0 {
		cur = s.versions[n-1].Index
	}
	if req.CheckIndex != nil && *req.CheckIndex != cur {
		return state.PolicyVersion{}, false, &state.StaleIndexError{Checked: *req.CheckIndex, Current: cur}
	}
	s.next += 3
	v := state.PolicyVersion{Index: s.next, AppliedBy: req.AppliedBy, Token: req.Token, Summary: req.Summary, Digest: state.PolicyDigest(req.Files), Files: req.Files}
	s.versions = append(s.versions, v)
	return v, false, nil
}

func (s *policyStore) PolicyHistory() []state.PolicyVersion { return s.versions }

func (s *policyStore) PolicyAt(index uint64) (state.PolicyVersion, bool) {
	for _, v := range s.versions {
		if v.Index == index {
			return v, true
		}
	}
	return state.PolicyVersion{}, false
}

// TestPolicyApplyEndpoint: limits are checked before the compiler sees
// anything, a policy with errors is refused with its diagnostics, a stale
// check-index with the index now, and a controller without raft says what
// to do instead.
func TestPolicyApplyEndpoint(t *testing.T) {
	compiled := 0
	compile := func(files map[string][]byte) (string, string, bool) {
		compiled++
		if bytes.Contains(files["mesh.hcl"], []byte("bad")) {
			return "", "Error: Unsupported argument\n\n  on mesh.hcl:1,1:\n", false
		}
		return "1 service", "", true
	}
	store := &policyStore{}
	h := api.NewHandler(api.Options{Token: testToken, PolicyStore: store, CompilePolicy: compile})
	noRaft := api.NewHandler(api.Options{Token: testToken})
	send := func(h http.Handler, method, path string, body any) (int, string) {
		var b []byte
		switch v := body.(type) {
		case nil:
		case []byte:
			b = v
		default:
			b, _ = json.Marshal(v)
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	apply := func(files map[string][]byte, check *uint64) api.PolicyApplyRequest {
		return api.PolicyApplyRequest{Files: files, CheckIndex: check, AppliedBy: "alice@laptop"}
	}
	u := func(n uint64) *uint64 { return &n }
	many := map[string][]byte{}
	for i := 0; i <= state.MaxPolicyFiles; i++ {
		many[fmt.Sprintf("f%03d.hcl", i)] = []byte("#")
	}
	for _, tc := range []struct {
		name     string
		h        http.Handler
		body     any
		code     int
		want     string
		compiles bool // the compiler was called
	}{
		{"no raft", noRaft, apply(map[string][]byte{"mesh.hcl": []byte("mesh {}")}, nil), http.StatusNotFound, "watched --policy-dir", false},
		{"body too large", h, bytes.Repeat([]byte(" "), state.MaxPolicyBytes*2), http.StatusRequestEntityTooLarge, "larger than", false},
		{"not JSON", h, []byte("{"), http.StatusBadRequest, "decoding the request", false},
		{"too deep", h, []byte(strings.Repeat("[", 100)), http.StatusBadRequest, "decoding the request", false},
		{"too many files", h, apply(many, nil), http.StatusBadRequest, "at most", false},
		{"bad name", h, apply(map[string][]byte{"../x.hcl": []byte("")}, nil), http.StatusBadRequest, "base name", false},
		{"errors", h, apply(map[string][]byte{"mesh.hcl": []byte("bad")}, nil), http.StatusUnprocessableEntity, "on mesh.hcl:1,1", true},
		{"first, check-index 0", h, apply(map[string][]byte{"mesh.hcl": []byte("mesh {}")}, u(0)), http.StatusOK, `"index": 3`, true},
		{"stale check-index", h, apply(map[string][]byte{"mesh.hcl": []byte("mesh { }")}, u(0)), http.StatusConflict, "the active policy's index is 3, not 0", true},
		{"current check-index", h, apply(map[string][]byte{"mesh.hcl": []byte("mesh { }")}, u(3)), http.StatusOK, `"index": 6`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := compiled
			code, body := send(tc.h, "POST", "/v1/policy/apply", tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q, want %d with %q", code, body, tc.code, tc.want)
			}
			if (compiled > before) != tc.compiles {
				t.Fatalf("compiled %d times, want compiled: %v", compiled-before, tc.compiles)
			}
		})
	}
	if len(store.versions) != 2 || store.versions[0].AppliedBy != "alice@laptop" || store.versions[0].Token != api.TokenName(testToken) || store.versions[0].Summary != "1 service" {
		t.Fatalf("applied %+v", store.versions)
	}
	if strings.Contains(store.versions[0].Token, testToken) {
		t.Fatal("the state records the admin token itself")
	}
	// History, and a version by index; an index not kept says how to
	// find one.
	code, body := send(h, "GET", "/v1/policy/history", nil)
	if code != http.StatusOK || !strings.Contains(body, `"index": 6`) {
		t.Fatalf("history: %d %s", code, body)
	}
	if code, body = send(h, "GET", "/v1/policy/versions/3", nil); code != http.StatusOK || !strings.Contains(body, "mesh.hcl") {
		t.Fatalf("version 3: %d %s", code, body)
	}
	if code, body = send(h, "GET", "/v1/policy/versions/4", nil); code != http.StatusNotFound || !strings.Contains(body, "weft policy history") {
		t.Fatalf("version 4: %d %s", code, body)
	}
	if code, body = send(noRaft, "GET", "/v1/policy/history", nil); code != http.StatusNotFound || !strings.Contains(body, "without raft") {
		t.Fatalf("history without raft: %d %s", code, body)
	}
}
