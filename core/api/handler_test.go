package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/refusals"
	"github.com/weftmesh/weft/core/registry"
	"github.com/weftmesh/weft/core/spiffe"
)

// admin is the admin API served as the controller serves it (api.NewServer,
// HTTPS with the controller's certificate), over a real controller loop,
// config server, CA, policy watcher and refused-handshake log, after one
// compilation of two instances.
type admin struct {
	addr, caFile string
	authority    *ca.CA
	hc           *http.Client // trusts the mesh CA, sends no token
}

const testToken = "s3cret-admin-token"

func startAdmin(t *testing.T, token string) *admin {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.LoadOrCreate(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	built := make(chan struct{}, 4)
	ctl := controller.New(controller.Options{Registry: registry.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnBuild: func(int, int) { built <- struct{}{} }})
	srv := meshserver.New(meshserver.Options{CA: authority, Workloads: ctl, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	snaps, pols := make(chan model.Snapshot, 1), make(chan *policy.Policy, 1)
	pols <- &policy.Policy{
		Mesh: policy.Mesh{TrustDomain: "example.org", DefaultAction: policy.Deny, IdentityBinding: policy.BindingPermissive},
		Services: map[string]policy.Service{
			"web": {Name: "web", Upstreams: []policy.Upstream{{Service: "api", LocalPort: 9001}}},
			"api": {Name: "api"},
		},
		Intentions: []policy.Intention{{Source: "web", Destination: "api", Action: policy.Allow}},
	}
	snaps <- model.Snapshot{Adapter: "local", Instances: []model.Instance{
		{ID: "web-0", Service: "web", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001}, Isolation: model.IsolationGuard},
		{ID: "api-0", Service: "api", Address: "127.0.0.3", Ports: map[string]int{"app": 8080, "mesh": 15001}},
		{ID: "bad-0", Service: "api", Address: "127.0.0.4", Ports: map[string]int{"app": 8080}},
	}, Dropped: []model.Dropped{{Instance: "task-9", Reason: model.ReasonNoMeshPort, Detail: "no port named mesh"}}}
	// Both are waiting before Run starts: it compiles them once.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx, snaps, pols, controller.ConfigServer(srv)); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-built:
	case <-time.After(10 * time.Second):
		t.Fatal("the controller compiled nothing within 10s")
	}
	// api-0's sidecar reports its app failing its checks: a second build.
	ctl.ReportHealth("api-0", false, "GET /health: 500")
	select {
	case <-built:
	case <-time.After(10 * time.Second):
		t.Fatal("the controller did not compile again within 10s of a failing health report")
	}

	watcher := controller.NewPolicyWatcher(controller.WatchOptions{Dir: t.TempDir()}, map[string]string{"mesh.hcl": `mesh { trust_domain = "example.org" }`})
	refusedSidecar := refusals.New(refusals.Options{})
	refusedAdmin := refusals.New(refusals.Options{})
	t.Cleanup(refusedSidecar.Close)
	t.Cleanup(refusedAdmin.Close)
	refusedSidecar.Refused("127.0.0.9:4000", errors.New("tls: first record does not look like a TLS handshake"))

	failedAt := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	h := api.NewHandler(api.Options{
		Token: token, Mesh: ctl, Sidecars: srv, Authority: authority, Policy: watcher,
		Adapters: func() []api.AdapterReport {
			return []api.AdapterReport{{Name: "nomad", LastError: "connection refused", LastErrorAt: &failedAt, SourceFailing: true}, {Name: "local", Pid: 42, Running: true, Restarts: 1}}
		},
		Refused:   map[string]*refusals.Log{"sidecar_api": refusedSidecar, "admin_api": refusedAdmin, "left_out": nil},
		Summarize: func(p *policy.Policy) string { return fmt.Sprintf("%d services", len(p.Services)) },
	})
	serving, err := srv.ServingTLSConfig(spiffe.Identity{TrustDomain: "example.org", Namespace: meshserver.ControllerNamespace, Service: meshserver.ControllerService}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewServer(h, serving)
	served := make(chan struct{})
	go func() { defer close(served); _ = hs.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { hs.Close(); <-served })

	a := &admin{addr: lis.Addr().String(), caFile: filepath.Join(dir, "ca", api.CAFile), authority: authority}
	pool, _, err := api.LoadCA(a.caFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: serving.Clone()}
	tr.TLSClientConfig.GetConfigForClient, tr.TLSClientConfig.GetCertificate, tr.TLSClientConfig.RootCAs = nil, nil, pool
	a.hc = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return a
}

// client is the CLI's own client, with token.
func (a *admin) client(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := api.New(api.Config{Addr: a.addr, Token: token, CACert: a.caFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// raw sends one request with the Authorization header auth (none when
// nil) and returns the answer's code and body.
func (a *admin) raw(t *testing.T, method, path string, auth *string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+a.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		req.Header.Set("Authorization", *auth)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func ptr(s string) *string { return &s }

// TestHandlerToken: every endpoint needs exactly "Authorization: Bearer
// TOKEN"; every other spelling is refused with 401 and a sentence naming
// where the token is.
func TestHandlerToken(t *testing.T) {
	a := startAdmin(t, testToken)
	endpoints := []struct{ method, path string }{
		{"GET", "/v1/status"}, {"GET", "/v1/policy"}, {"GET", "/v1/ca/roots"}, {"POST", "/v1/ca/rotate"}, {"POST", "/v1/join-tokens"},
	}
	tests := []struct {
		name string
		auth *string
		ok   bool
	}{
		{"no header", nil, false},
		{"empty header", ptr(""), false},
		{"no scheme", ptr(testToken), false},
		{"another scheme", ptr("Basic " + testToken), false},
		{"lower-case scheme", ptr("bearer " + testToken), false},
		{"two spaces", ptr("Bearer  " + testToken), false},
		{"a prefix of the token", ptr("Bearer " + testToken[:len(testToken)-1]), false},
		{"the token and more", ptr("Bearer " + testToken + "x"), false},
		{"the token in another case", ptr("Bearer " + strings.ToUpper(testToken)), false},
		{"an empty token", ptr("Bearer "), false},
		{"a huge token", ptr("Bearer " + strings.Repeat(testToken, 1000)), false},
		{"the token", ptr("Bearer " + testToken), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range endpoints {
				if e.path == "/v1/ca/rotate" && tc.ok {
					continue // TestHandlerEndpoints rotates
				}
				code, body := a.raw(t, e.method, e.path, tc.auth, "")
				if !tc.ok {
					if code != http.StatusUnauthorized || !strings.Contains(body, "DATA_DIR/admin.token") || !strings.Contains(body, "WEFT_TOKEN") {
						t.Errorf("%s %s: %d %q, want 401 naming DATA_DIR/admin.token and WEFT_TOKEN", e.method, e.path, code, body)
					}
					continue
				}
				if code == http.StatusUnauthorized {
					t.Errorf("%s %s with the token: 401 %q", e.method, e.path, body)
				}
			}
		})
	}

	// A controller with an empty token lets nobody in, not even "Bearer ".
	t.Run("a controller without a token", func(t *testing.T) {
		empty := startAdmin(t, "")
		for _, auth := range []*string{nil, ptr("Bearer "), ptr("Bearer")} {
			if code, body := empty.raw(t, "GET", "/v1/status", auth, ""); code != http.StatusUnauthorized {
				t.Errorf("Authorization %v: %d %q, want 401", auth, code, body)
			}
		}
	})

	// The CLI's client says what to do with a refused token.
	var se *api.StatusError
	err := a.client(t, "wrong").Call(context.Background(), "GET", "/v1/status", nil, nil)
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Errorf("client with a wrong token: %v, want a 401 StatusError", err)
	}
}

// keys returns the top-level keys of a JSON object, sorted.
func keys(t *testing.T, body string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, body)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestHandlerEndpoints: each endpoint's JSON, by its field names (what the
// CLI and the tests decode) and its values.
func TestHandlerEndpoints(t *testing.T) {
	a := startAdmin(t, testToken)
	auth := ptr("Bearer " + testToken)
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantKeys                 []string
		check                    func(t *testing.T, body string)
	}{
		{name: "status", method: "GET", path: "/v1/status", wantCode: 200,
			wantKeys: []string{"adapters", "config_builds", "controller_version", "dropped", "dropped_counts", "identity_binding", "instances", "intentions", "policy", "refused_handshakes", "roots", "sidecars", "skipped", "time", "trust_domain", "unisolated_instances"},
			check: func(t *testing.T, body string) {
				var rep api.StatusReport
				if err := json.Unmarshal([]byte(body), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.TrustDomain != "example.org" || rep.Policy != "2 services" || rep.IntentionsCount != 1 || rep.ConfigBuilds != 2 || rep.IdentityBinding != "permissive" {
					t.Errorf("status = %+v", rep)
				}
				if len(rep.Adapters) != 2 || rep.Adapters[0].Name != "local" || rep.Adapters[0].Pid != 42 || rep.Adapters[1].LastError != "connection refused" {
					t.Errorf("adapters = %+v, want local then nomad", rep.Adapters)
				}
				if at := rep.Adapters[1].LastErrorAt; at == nil || !at.Equal(time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)) || !rep.Adapters[1].SourceFailing {
					t.Errorf("nomad's last error at %v (source failing %v), want 18:00:00 and true", at, rep.Adapters[1].SourceFailing)
				}
				wantDropped := []model.Dropped{
					{Adapter: "local", Instance: "bad-0", Reason: model.ReasonNoMeshPort, Detail: `instance bad-0: no "mesh" port: the sidecar's inbound port is required`},
					{Adapter: "local", Instance: "task-9", Reason: model.ReasonNoMeshPort, Detail: "no port named mesh"},
				}
				if !slices.Equal(rep.Dropped, wantDropped) || rep.DroppedCounts[model.ReasonNoMeshPort] != 2 || len(rep.DroppedCounts) != 1 {
					t.Errorf("dropped = %+v, counts %v; want %+v, no_mesh_port 2", rep.Dropped, rep.DroppedCounts, wantDropped)
				}
				if len(rep.Instances) != 2 || rep.Unisolated != 1 {
					t.Fatalf("instances = %+v, unisolated %d; want 2, 1", rep.Instances, rep.Unisolated)
				}
				i := slices.IndexFunc(rep.Instances, func(in api.InstanceReport) bool { return in.ID == "web-0" })
				web := rep.Instances[i]
				if web.Identity != "spiffe://example.org/ns/default/svc/web" || web.Isolation != "guard" || web.App == "" ||
					len(web.Outbound) != 1 || web.Outbound[0] != (api.OutboundReport{Upstream: "api", Address: "127.0.0.2", Port: 9001}) {
					t.Errorf("web-0 = %+v", web)
				}
				if web.Health != "" || web.HealthSource != "scheduler" || web.SidecarCheck != "" || web.HealthReason != "" {
					t.Errorf("web-0's health = %+v, want unknown, from its scheduler", web)
				}
				api0 := rep.Instances[slices.IndexFunc(rep.Instances, func(in api.InstanceReport) bool { return in.ID == "api-0" })]
				if api0.Health != "critical" || api0.HealthSource != "sidecar_check" || api0.SidecarCheck != "failing" ||
					api0.HealthReason != "GET /health: 500" || api0.SchedulerHealth != "" {
					t.Errorf("api-0's health = %+v, want critical from its failing sidecar check", api0)
				}
				if len(rep.Skipped) != 2 || rep.Skipped[0].Reason != "unbound workload" {
					t.Errorf("skipped = %+v, want both instances (no bindings, permissive)", rep.Skipped)
				}
				if len(rep.Roots) != 1 || !rep.Roots[0].Active || rep.Roots[0].ID != a.authority.ActiveRootID() {
					t.Errorf("roots = %+v", rep.Roots)
				}
				if rep.RefusedHandshakes["sidecar_api"].Total != 1 || rep.RefusedHandshakes["sidecar_api"].ByReason["not_tls"] != 1 {
					t.Errorf("refused = %+v, want one not_tls on the sidecar API", rep.RefusedHandshakes)
				}
				if _, ok := rep.RefusedHandshakes["left_out"]; ok || len(rep.RefusedHandshakes) != 2 {
					t.Errorf("refused = %+v, want sidecar_api and admin_api only", rep.RefusedHandshakes)
				}
				if !strings.Contains(body, "\n  \"trust_domain\"") {
					t.Errorf("status is not indented as the CLI's --json prints it:\n%s", body)
				}
			}},
		{name: "policy", method: "GET", path: "/v1/policy", wantCode: 200, wantKeys: []string{"files"},
			check: func(t *testing.T, body string) {
				var p api.PolicySources
				json.Unmarshal([]byte(body), &p)
				if p.Files["mesh.hcl"] != `mesh { trust_domain = "example.org" }` {
					t.Errorf("policy = %+v", p)
				}
			}},
		{name: "roots", method: "GET", path: "/v1/ca/roots", wantCode: 200, wantKeys: []string{"bundle_pem", "roots", "sidecars_unknown"},
			check: func(t *testing.T, body string) {
				var r api.RootsReport
				json.Unmarshal([]byte(body), &r)
				if r.BundlePEM != string(a.authority.RootsPEM()) || len(r.Roots) != 1 || r.Roots[0].ID != a.authority.ActiveRootID() {
					t.Errorf("roots = %+v", r)
				}
				if got := keys(t, string(mustJSON(t, r.Roots[0]))); !slices.Equal(got, []string{"active", "id", "not_after", "not_before", "sidecars", "subject"}) {
					t.Errorf("a root's keys = %v", got)
				}
			}},
		{name: "join token", method: "POST", path: "/v1/join-tokens", wantCode: 200, wantKeys: []string{"expires_in", "token"},
			body: `{"adapter":"local","instance":"web-0","service":"web","namespace":"","ttl_seconds":60}`,
			check: func(t *testing.T, body string) {
				var r api.JoinTokenResponse
				json.Unmarshal([]byte(body), &r)
				c, err := ca.NewJoinVerifier(a.authority.JoinSecret()).Verify(r.Token)
				if err != nil || c.Adapter != "local" || c.Instance != "web-0" || c.Service != "web" || r.ExpiresIn != "1m0s" {
					t.Errorf("token %+v: claims %+v, %v", r, c, err)
				}
			}},
		{name: "join token, a TTL past an hour is 10 minutes", method: "POST", path: "/v1/join-tokens", wantCode: 200, wantKeys: []string{"expires_in", "token"},
			body: `{"adapter":"local","instance":"web-0","service":"web","ttl_seconds":7200}`,
			check: func(t *testing.T, body string) {
				if !strings.Contains(body, `"expires_in":"10m0s"`) {
					t.Errorf("answer %s, want expires_in 10m0s", body)
				}
			}},
		{name: "application token", method: "POST", path: "/v1/join-tokens", wantCode: 200, wantKeys: []string{"expires_in", "token"},
			body: `{"adapter":"local","node":"node-a","service":"api","namespace":"shop","ttl_seconds":60}`,
			check: func(t *testing.T, body string) {
				var r api.JoinTokenResponse
				json.Unmarshal([]byte(body), &r)
				c, err := ca.NewJoinVerifier(a.authority.JoinSecret()).VerifyNodeAnd(r.Token, "api-0", nil)
				if err != nil || !c.IsApplicationToken() || c.Node != "node-a" || c.Service != "api" || c.Namespace != "shop" {
					t.Errorf("token %+v: claims %+v, %v; want an application token for shop/api on node-a", r, c, err)
				}
			}},
		{name: "application token, a service that is no DNS label", method: "POST", path: "/v1/join-tokens", body: `{"adapter":"local","node":"node-a","service":"Api_1"}`, wantCode: 400},
		{name: "node token, a namespace without a service", method: "POST", path: "/v1/join-tokens", body: `{"adapter":"local","node":"node-a","namespace":"shop"}`, wantCode: 400},
		{name: "join token, not JSON", method: "POST", path: "/v1/join-tokens", body: `adapter=local`, wantCode: 400,
			check: func(t *testing.T, body string) {
				if !strings.Contains(body, "decoding the request") || !strings.Contains(body, `send {"adapter"`) {
					t.Errorf("answer %q", body)
				}
			}},
		{name: "join token, no adapter", method: "POST", path: "/v1/join-tokens", body: `{"instance":"web-0","service":"web"}`, wantCode: 400},
		{name: "join token, no instance", method: "POST", path: "/v1/join-tokens", body: `{"adapter":"local","service":"web"}`, wantCode: 400},
		{name: "join token, a service that is no DNS label", method: "POST", path: "/v1/join-tokens", body: `{"adapter":"local","instance":"web-0","service":"Web_1"}`, wantCode: 400},
		{name: "join token, a namespace that is no DNS label", method: "POST", path: "/v1/join-tokens", body: `{"adapter":"local","instance":"web-0","service":"web","namespace":"a/b"}`, wantCode: 400},
		{name: "join token, a body past 64 KiB", method: "POST", path: "/v1/join-tokens", wantCode: 400,
			body: `{"adapter":"local","instance":"` + strings.Repeat("x", 1<<16) + `","service":"web"}`},
		{name: "rotate", method: "POST", path: "/v1/ca/rotate", wantCode: 200, wantKeys: []string{"new", "old"},
			check: func(t *testing.T, body string) {
				var r ca.Rotation
				json.Unmarshal([]byte(body), &r)
				if r.New.ID != a.authority.ActiveRootID() || r.Old.ID == r.New.ID || r.Old.RetireAt == nil {
					t.Errorf("rotation = %+v", r)
				}
				if n := len(a.authority.Roots()); n != 2 {
					t.Errorf("after a rotation the CA has %d roots, want 2", n)
				}
			}},
		{name: "rotate is a POST", method: "GET", path: "/v1/ca/rotate", wantCode: 405},
		{name: "status is a GET", method: "POST", path: "/v1/status", wantCode: 405},
		{name: "an unknown path", method: "GET", path: "/v1/nothing", wantCode: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := a.raw(t, tc.method, tc.path, auth, tc.body)
			if code != tc.wantCode {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.wantCode)
			}
			if tc.wantKeys != nil {
				if got := keys(t, body); !slices.Equal(got, tc.wantKeys) {
					t.Errorf("keys = %v, want %v", got, tc.wantKeys)
				}
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}

	// The CLI's client decodes the same types.
	var rep api.StatusReport
	if err := a.client(t, testToken).Call(context.Background(), "GET", "/v1/status", nil, &rep); err != nil || rep.TrustDomain != "example.org" {
		t.Errorf("client: %+v, %v", rep, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// TestAuthorized: the token check on a request built in process, where a
// header keeps spellings the wire trims ("Bearer " with an empty token).
func TestAuthorized(t *testing.T) {
	tests := []struct {
		name, token, header string
		want                bool
	}{
		{"the token", "tok", "Bearer tok", true},
		{"an empty token authorizes nothing", "", "Bearer ", false},
		{"an empty token, no header", "", "", false},
		{"a trailing space", "tok", "Bearer tok ", false},
		{"a prefix", "tok", "Bearer to", false},
		{"no scheme", "tok", "tok", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "https://127.0.0.1/v1/status", nil)
			if tc.header != "" {
				r.Header["Authorization"] = []string{tc.header}
			}
			if got := api.Authorized(r, tc.token); got != tc.want {
				t.Errorf("Authorized(%q, token %q) = %v, want %v", tc.header, tc.token, got, tc.want)
			}
		})
	}
}
