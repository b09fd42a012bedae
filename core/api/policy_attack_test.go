package api_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/spiffe"
	"github.com/weftmesh/weft/core/state"
)

// Hostile tests of `weft policy apply` (POST /v1/policy/apply) and the
// history endpoints, against a real raft replica and the admin API over
// TLS on loopback, with a real HTTP client (docs/ha-threats.md).

// attackAPI is the admin API of one replica leading a cluster of one.
type attackAPI struct {
	url      string
	client   *http.Client
	node     *state.Node
	compiled atomic.Int64
}

func startAttackAPI(t *testing.T) *attackAPI {
	t.Helper()
	authority, err := ca.New()
	if err != nil {
		t.Fatal(err)
	}
	id := spiffe.Identity{TrustDomain: "attack.test", Namespace: "weft-system", Service: "weft-controller"}
	cert, err := authority.ServerCertificate(id, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := ln.Addr().String()
	ln.Close()
	n, err := state.Open(state.Options{
		Dir: t.TempDir(), Addr: raftAddr, BootstrapExpect: 1, Key: bytes.Repeat([]byte{9}, state.KeySize),
		TLS:     state.PeerTLS{Certificate: func() (*tls.Certificate, error) { return &cert, nil }, Identity: id.URL().String()},
		LocalCA: authority.State, OnCA: func(ca.State) {},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	start := time.Now()
	for !n.HasCA() || !n.Status().CanIssue {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the replica did not lead within 15s: %+v", n.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	a := &attackAPI{node: n}
	// The compiler stands in for the HCL one (core reads no HCL): a file
	// holding "bad" does not compile.
	compile := func(files map[string][]byte) (string, string, bool) {
		a.compiled.Add(1)
		for name, b := range files {
			if bytes.Contains(b, []byte("bad")) {
				return "", "Error: Unsupported argument\n\n  on " + name + ":1,1:\n", false
			}
		}
		return fmt.Sprintf("%d files", len(files)), "", true
	}
	srv := httptest.NewUnstartedServer(api.NewHandler(api.Options{Token: testToken, PolicyStore: n, CompilePolicy: compile}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a.url, a.client = srv.URL, srv.Client()
	a.client.Timeout = 30 * time.Second
	return a
}

func (a *attackAPI) do(t *testing.T, method, path string, header map[string][]string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

var bearer = map[string][]string{"Authorization": {"Bearer " + testToken}}

func applyBody(files map[string]string, extra string) []byte {
	var b strings.Builder
	b.WriteString(`{"files":{`)
	i := 0
	for name, content := range files {
		if i > 0 {
			b.WriteString(",")
		}
		n, _ := json.Marshal(name)
		fmt.Fprintf(&b, `%s:"%s"`, n, base64.StdEncoding.EncodeToString([]byte(content)))
		i++
	}
	b.WriteString("}")
	b.WriteString(extra)
	b.WriteString("}")
	return []byte(b.String())
}

// countingReader is a request body of n bytes that counts what was read.
type countingReader struct {
	left int64
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > r.left {
		n = r.left
	}
	for i := range p[:n] {
		p[i] = ' '
	}
	r.left -= n
	r.read.Add(n)
	return int(n), nil
}

// TestPolicyApplyAttack: every request is refused with a status that
// says why, before the compiler or the log sees it, and the history
// holds only what was applied on purpose.
func TestPolicyApplyAttack(t *testing.T) {
	a := startAttackAPI(t)
	good := applyBody(map[string]string{"mesh.hcl": "mesh {}"}, "")
	deep := []byte(`{"files":{"mesh.hcl":"bWVzaCB7fQ=="},"applied_by":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}")
	many := map[string]string{}
	for i := range 10000 {
		many[fmt.Sprintf("f%05d.hcl", i)] = ""
	}
	for _, tc := range []struct {
		name     string
		header   map[string][]string
		body     []byte
		code     int
		want     string
		compiles bool
	}{
		{"no token", nil, good, http.StatusUnauthorized, "Authorization: Bearer", false},
		{"wrong token", map[string][]string{"Authorization": {"Bearer not-the-token"}}, good, http.StatusUnauthorized, "", false},
		{"token as a prefix", map[string][]string{"Authorization": {"Bearer " + testToken[:len(testToken)-1]}}, good, http.StatusUnauthorized, "", false},
		// (A trailing space is HTTP's optional whitespace, not part of the
		// value: the same token.)
		{"two spaces before the token", map[string][]string{"Authorization": {"Bearer  " + testToken}}, good, http.StatusUnauthorized, "", false},
		{"the token twice", map[string][]string{"Authorization": {"Bearer " + testToken + testToken}}, good, http.StatusUnauthorized, "", false},
		{"scheme in lower case", map[string][]string{"Authorization": {"bearer " + testToken}}, good, http.StatusUnauthorized, "", false},
		{"Basic with the token", map[string][]string{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+testToken))}}, good, http.StatusUnauthorized, "", false},
		{"the token in another header", map[string][]string{"X-Weft-Token": {testToken}}, good, http.StatusUnauthorized, "", false},
		{"wrong token first, right one second", map[string][]string{"Authorization": {"Bearer nope", "Bearer " + testToken}}, good, http.StatusUnauthorized, "", false},
		{"nesting 10,000 deep", bearer, deep, http.StatusBadRequest, "decoding the request", false},
		{"10,000 empty files", bearer, applyBody(many, ""), http.StatusBadRequest, "a replicated policy holds at most 128", false},
		{"a path as a file name", bearer, applyBody(map[string]string{"../../etc/mesh.hcl": "mesh {}"}, ""), http.StatusBadRequest, "want a base name", false},
		{"a NUL in a file name", bearer, applyBody(map[string]string{"mesh.hcl\x00.txt": "mesh {}"}, ""), http.StatusBadRequest, "want a base name", false},
		{"an upper-case suffix", bearer, applyBody(map[string]string{"MESH.HCL": "mesh {}"}, ""), http.StatusBadRequest, "want a base name", false},
		{"file bytes not base64", bearer, []byte(`{"files":{"mesh.hcl":"!!"}}`), http.StatusBadRequest, "decoding the request", false},
		{"files a list", bearer, []byte(`{"files":["mesh.hcl"]}`), http.StatusBadRequest, "decoding the request", false},
		{"check_index -1", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"check_index":-1`), http.StatusBadRequest, "decoding the request", false},
		{"check_index 2^64", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"check_index":18446744073709551616`), http.StatusBadRequest, "decoding the request", false},
		{"check_index 1e3", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"check_index":1e3`), http.StatusBadRequest, "decoding the request", false},
		{"check_index a string", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"check_index":"0"`), http.StatusBadRequest, "decoding the request", false},
		{"applied_by with a terminal escape", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"applied_by":"alice\u001b[2J"`), http.StatusBadRequest, "without control characters", false},
		{"applied_by with a forged second line", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"applied_by":"alice\n42  2026-01-01  root"`), http.StatusBadRequest, "without control characters", false},
		{"applied_by with a right-to-left override", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"applied_by":"alice\u202eecila"`), http.StatusBadRequest, "without control characters", false},
		{"applied_by of 1 KiB", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"applied_by":"`+strings.Repeat("a", 1024)+`"`), http.StatusBadRequest, "at most 512 bytes", false},
		{"a policy with errors", bearer, applyBody(map[string]string{"mesh.hcl": "bad"}, ""), http.StatusUnprocessableEntity, "on mesh.hcl:1,1", true},
		{"check_index 2^63 (stale)", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"check_index":9223372036854775808`), http.StatusConflict, "no policy has been applied yet", true},
		{"a good one", bearer, applyBody(map[string]string{"mesh.hcl": "mesh {}"}, `,"applied_by":"alice@laptop"`), http.StatusOK, `"applied_by": "alice@laptop"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.compiled.Load()
			code, body := a.do(t, "POST", "/v1/policy/apply", tc.header, bytes.NewReader(tc.body))
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q, want %d with %q", code, body[:min(len(body), 400)], tc.code, tc.want)
			}
			if compiled := a.compiled.Load() > before; compiled != tc.compiles {
				t.Fatalf("compiled: %v, want %v", compiled, tc.compiles)
			}
		})
	}
	if h := a.node.PolicyHistory(); len(h) != 1 || h[0].AppliedBy != "alice@laptop" {
		t.Fatalf("history %+v, want the one good apply", h)
	}

	// 100 MB: refused once the limit (1.4 MiB) is read, never the rest,
	// with and without the token.
	for _, tc := range []struct {
		name   string
		header map[string][]string
		code   int
	}{
		{"100 MB without a token", nil, http.StatusUnauthorized},
		{"100 MB with the token", bearer, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &countingReader{left: 100 << 20}
			start := time.Now()
			code, msg := a.do(t, "POST", "/v1/policy/apply", tc.header, body)
			// The server may close before the client has sent it all: the
			// client then reports the write error instead of the status.
			if code != tc.code && code != 0 {
				t.Fatalf("got %d %q, want %d", code, msg, tc.code)
			}
			if got := body.read.Load(); got > 16<<20 {
				t.Fatalf("the client could send %d MiB of 100 before the answer; want it cut near the limit", got>>20)
			}
			t.Logf("answered %d after %s, %.1f MiB of 100 sent", code, time.Since(start).Round(time.Millisecond), float64(body.read.Load())/(1<<20))
		})
	}
	if h := a.node.PolicyHistory(); len(h) != 1 {
		t.Fatalf("history holds %d versions after the attacks, want 1", len(h))
	}
}

// TestPolicyHistoryAttack: hostile indexes and page sizes on the history
// endpoints, after more applies than the state keeps.
func TestPolicyHistoryAttack(t *testing.T) {
	a := startAttackAPI(t)
	var first, last uint64
	for i := range state.MaxPolicyHistory + 5 {
		code, body := a.do(t, "POST", "/v1/policy/apply", bearer, bytes.NewReader(applyBody(map[string]string{"mesh.hcl": fmt.Sprintf("mesh {} # %d", i)}, "")))
		if code != http.StatusOK {
			t.Fatalf("apply %d: %d %s", i, code, body)
		}
		var resp api.PolicyApplyResponse
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = resp.Version.Index
		}
		last = resp.Version.Index
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/policy/history?limit=1000000000&page=-1&per_page=99999999999999999999", http.StatusOK, fmt.Sprintf(`"kept": %d`, state.MaxPolicyHistory)},
		{fmt.Sprintf("/v1/policy/versions/%d", last), http.StatusOK, `"files"`},
		{fmt.Sprintf("/v1/policy/versions/%d", first), http.StatusNotFound, "keeps the last 20"},
		{"/v1/policy/versions/0", http.StatusNotFound, "no policy version at index 0"},
		{"/v1/policy/versions/-1", http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/9223372036854775808", http.StatusNotFound, "no policy version"},
		{"/v1/policy/versions/18446744073709551615", http.StatusNotFound, "no policy version"},
		{"/v1/policy/versions/18446744073709551616", http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/+5", http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/0x10", http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/1e3", http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/%2e%2e", http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/1%00", http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/" + strings.Repeat("9", 4000), http.StatusBadRequest, "the index is a number"},
		{"/v1/policy/versions/5/../../history", http.StatusTemporaryRedirect, ""},
		{"/v1/policy/versions/", http.StatusNotFound, ""},
	} {
		t.Run(tc.path[:min(len(tc.path), 60)], func(t *testing.T) {
			// A client that follows no redirect: the cleaned path is the
			// server's answer, and it needs the token again.
			c := *a.client
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			req, err := http.NewRequest("GET", a.url+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, b[:min(len(b), 300)], tc.code, tc.want)
			}
			if tc.code == http.StatusOK && strings.Contains(tc.path, "history") {
				var h api.PolicyHistory
				if err := json.Unmarshal(b, &h); err != nil || len(h.Versions) != state.MaxPolicyHistory {
					t.Fatalf("history of %d versions (%v), want the %d kept", len(h.Versions), err, state.MaxPolicyHistory)
				}
			}
		})
	}
	// Without the token, nothing of the history.
	if code, _ := a.do(t, "GET", "/v1/policy/history", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("history without a token: %d, want 401", code)
	}
	if code, _ := a.do(t, "GET", fmt.Sprintf("/v1/policy/versions/%d", last), map[string][]string{"Authorization": {"Bearer x"}}, nil); code != http.StatusUnauthorized {
		t.Fatalf("a version with a wrong token: %d, want 401", code)
	}
}

// TestPolicyApplyRace: twenty operators apply twenty different policies
// at once, each checked against the same index: exactly one is applied,
// every other is refused with 409 naming the index now.
func TestPolicyApplyRace(t *testing.T) {
	a := startAttackAPI(t)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for i := range 20 {
		wg.Go(func() {
			code, body := a.do(t, "POST", "/v1/policy/apply", bearer,
				bytes.NewReader(applyBody(map[string]string{"mesh.hcl": fmt.Sprintf("mesh {} # operator %d", i)}, `,"check_index":0`)))
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == http.StatusConflict && !strings.Contains(body, "--check-index") {
				t.Errorf("a refusal that does not say what to do: %q", body)
			}
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 19 {
		t.Fatalf("answers %v, want one 200 and nineteen 409", codes)
	}
	if h := a.node.PolicyHistory(); len(h) != 1 {
		t.Fatalf("history holds %d versions, want 1", len(h))
	}
}

// TestAdminTokenFileAttack: an admin.token a careless operator left is a
// refusal that says what to do, never a hang or a read without end.
func TestAdminTokenFileAttack(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"a FIFO", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"1 MiB", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("a"), 1<<20), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "larger than"},
		{"only spaces", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("  \n\t"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.make(t, filepath.Join(dir, api.TokenFile))
			done := make(chan error, 1)
			go func() { _, err := api.LoadOrCreateToken(dir); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error with %q", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("LoadOrCreateToken did not return within 5s")
			}
		})
	}
}
