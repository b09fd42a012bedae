package e2e

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// tracePolicy is frontend -> api -> store, called by "client" (the test,
// through the client's sidecar), with tracing as the block says.
func tracePolicy(tracing string) string {
	return `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
` + tracing + `
}

service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "frontend" { local_port = 9001 }
}
service "frontend" {
  protocol = "http"
  binding "local" { name = "frontend" }
  upstream "api" { local_port = 9001 }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  upstream "store" { local_port = 9002 }
}
service "store" {
  protocol = "http"
  binding "local" { name = "store" }
}

intention "client" "frontend" { action = "allow" }
intention "frontend" "api" { action = "allow" }
intention "api" "store" { action = "allow" }
`
}

func tracingBlock(endpoint string, sampling string) string {
	return fmt.Sprintf(`
  tracing {
    endpoint      = %q
    sampling      = %s
    batch_timeout = "50ms"
  }`, endpoint, sampling)
}

func traceWorkloads() string {
	app := filepath.Join(binDir, "weft-demo-app")
	return harness.Workload("client", app) +
		harness.Workload("frontend", app, `env = { UPSTREAM_API = "http://${HOST}:9001" }`) +
		harness.Workload("api", app, `env = { UPSTREAM_STORE = "http://${HOST}:9002" }`) +
		harness.Workload("store", app)
}

// walk sends GET /call/api/call/store to the frontend through the client's
// sidecar with hdr, and returns the traceparent the store's app received.
func walk(t *testing.T, client string, hdr http.Header) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(client, "9001")+"/call/api/call/store", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 10 * time.Second}
	code, body, _, err := harness.Do(c, req)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /call/api/call/store through the client's sidecar: %d %v\n%s", code, err, body)
	}
	var a struct {
		Response struct {
			Response struct {
				Service     string `json:"service"`
				Traceparent string `json:"traceparent"`
			} `json:"response"`
		} `json:"response"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("decoding the frontend's answer: %v\n%s", err, body)
	}
	if s := a.Response.Response.Service; s != "store" {
		t.Fatalf("the walk did not reach the store (got %q):\n%s", s, body)
	}
	return a.Response.Response.Traceparent
}

// hop is one span the test expects: the sidecar's service, its kind, the
// caller and callee identities.
type hop struct {
	service, kind, caller, callee string
}

// TestTraceFrontendAPIStore is the tracing proof of issue 14: a real
// Jaeger 1.75.0 receives, over OTLP, the trace of one request through
// client -> frontend -> api -> store (a client and a server span per
// sidecar hop, each the child of the one before, with the mesh
// attributes), read back through Jaeger's query API; a request with a
// W3C or B3 parent continues its trace; sampling 0, applied by a policy
// change without restarting a sidecar, exports nothing of a new trace;
// and with the block removed the sidecars pass trace headers through.
func TestTraceFrontendAPIStore(t *testing.T) {
	j := harness.StartJaeger(t)
	m := harness.StartLocalMesh(t, binDir, t.TempDir(), tracePolicy(tracingBlock(j.OTLPGRPC, "1.0")), traceWorkloads(), "127.0.103.2",
		"--adapter-option", "local.isolation=none")
	s := m.Controller.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(4))
	client := s.Address("client")
	addr := map[string]string{}
	for _, svc := range []string{"frontend", "api", "store"} {
		addr[svc] = s.Address(svc)
	}
	chain := []hop{
		{"client", "client", id("client"), id("frontend")},
		{"frontend", "server", id("client"), id("frontend")},
		{"frontend", "client", id("frontend"), id("api")},
		{"api", "server", id("frontend"), id("api")},
		{"api", "client", id("api"), id("store")},
		{"store", "server", id("api"), id("store")},
	}

	t.Run("new trace", func(t *testing.T) {
		tp := walk(t, client, nil)
		tid, sid, flags := splitTraceparent(t, tp)
		if flags != "01" {
			t.Fatalf("the store got traceparent %q: not sampled at sampling 1.0", tp)
		}
		tr := j.WaitTrace(t, tid, len(chain))
		spans := checkChain(t, tr, chain, "")
		if last := spans[len(spans)-1]; last.SpanID != sid {
			t.Errorf("the store's app got span %s, want its sidecar's server span %s", sid, last.SpanID)
		}
		for i, sp := range spans {
			if got := sp.Tag("http.request.method"); got != "GET" {
				t.Errorf("span %d: http.request.method %q", i, got)
			}
			if got := sp.Tag("http.response.status_code"); got != "200" {
				t.Errorf("span %d: http.response.status_code %q", i, got)
			}
			if chain[i].kind != "client" {
				continue
			}
			callee := strings.TrimPrefix(chain[i].callee, "spiffe://weft.test/ns/default/svc/")
			if got := sp.Tag("weft.service"); got != callee {
				t.Errorf("span %d: weft.service %q, want %q", i, got, callee)
			}
			if got := sp.Tag("weft.upstream.instance"); !strings.HasPrefix(got, addr[callee]+":") {
				t.Errorf("span %d: weft.upstream.instance %q, want an address of %s's instance %s", i, got, callee, addr[callee])
			}
			if got := sp.Tag("weft.retry_count"); got != "0" {
				t.Errorf("span %d: weft.retry_count %q, want 0", i, got)
			}
		}
	})

	for _, tc := range []struct {
		name string
		hdr  func(tid, sid string) http.Header
	}{
		{"w3c parent", func(tid, sid string) http.Header {
			return http.Header{"Traceparent": {"00-" + tid + "-" + sid + "-01"}}
		}},
		{"b3 single parent", func(tid, sid string) http.Header { return http.Header{"B3": {tid + "-" + sid + "-1"}} }},
		{"b3 multi parent", func(tid, sid string) http.Header {
			return http.Header{"X-B3-Traceid": {tid}, "X-B3-Spanid": {sid}, "X-B3-Sampled": {"1"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tid, sid := randomHex(t, 16), randomHex(t, 8)
			tp := walk(t, client, tc.hdr(tid, sid))
			if got, _, _ := splitTraceparent(t, tp); got != tid {
				t.Fatalf("the store got trace %s, want the caller's %s", got, tid)
			}
			checkChain(t, j.WaitTrace(t, tid, len(chain)), chain, sid)
		})
	}

	pids := instancePids(t, m.Controller.DataDir)
	t.Run("sampling 0 exports nothing new", func(t *testing.T) {
		applyPolicy(t, m, tracePolicy(tracingBlock(j.OTLPGRPC, "0")))
		tp := walk(t, client, nil)
		unsampled, _, flags := splitTraceparent(t, tp)
		if flags != "00" {
			t.Errorf("the store got traceparent %q at sampling 0, want flags 00", tp)
		}
		// A sampled parent is still honoured: its trace arriving whole,
		// after the unsampled one was sent, shows the sidecars export.
		tid, sid := randomHex(t, 16), randomHex(t, 8)
		walk(t, client, http.Header{"Traceparent": {"00-" + tid + "-" + sid + "-01"}})
		checkChain(t, j.WaitTrace(t, tid, len(chain)), chain, sid)
		if tr, err := j.Trace(unsampled); !errors.Is(err, harness.ErrNoTrace) {
			t.Errorf("jaeger holds the unsampled trace %s: %v %+v", unsampled, err, tr)
		}
	})

	t.Run("off passes headers through", func(t *testing.T) {
		applyPolicy(t, m, tracePolicy(""))
		sent := "00-" + randomHex(t, 16) + "-" + randomHex(t, 8) + "-01"
		if got := walk(t, client, http.Header{"Traceparent": {sent}}); got != sent {
			t.Errorf("with tracing off the store got traceparent %q, want the caller's %q untouched", got, sent)
		}
	})

	if after := instancePids(t, m.Controller.DataDir); !slices.Equal(pids, after) {
		t.Errorf("processes restarted across the tracing changes: pids %v, then %v", pids, after)
	}
}

// applyPolicy replaces the mesh's policy and waits until every sidecar
// has acknowledged a configuration newer than the one it had.
func applyPolicy(t *testing.T, m *harness.LocalMesh, policy string) {
	t.Helper()
	before := map[string]uint64{}
	st, err := m.Controller.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range st.Sidecars {
		before[sc.Instance] = sc.AckedVersion
	}
	harness.ReplaceFile(t, m.PolicyFile, policy)
	m.Controller.WaitFor(t, "every sidecar to acknowledge the new policy", 30*time.Second, func(s *harness.Status) bool {
		for _, sc := range s.Sidecars {
			if sc.AckedVersion <= before[sc.Instance] || sc.AckedVersion != sc.Version {
				return false
			}
		}
		return len(s.Sidecars) == len(before)
	})
}

// checkChain checks that tr holds exactly the spans of chain, each the
// child of the one before (the first the child of rootParent, "" for
// none), with the identities and kinds chain gives. It returns the spans
// in chain order.
func checkChain(t *testing.T, tr *harness.JaegerTrace, chain []hop, rootParent string) []harness.JaegerSpan {
	t.Helper()
	if len(tr.Spans) != len(chain) {
		t.Fatalf("trace %s has %d spans, want %d (one client and one server span per hop)", tr.TraceID, len(tr.Spans), len(chain))
	}
	byParent := map[string]harness.JaegerSpan{}
	for _, sp := range tr.Spans {
		if _, dup := byParent[sp.Parent()]; dup {
			t.Fatalf("two spans of trace %s have the parent %q: not a chain", tr.TraceID, sp.Parent())
		}
		byParent[sp.Parent()] = sp
	}
	var out []harness.JaegerSpan
	parent := rootParent
	for i, h := range chain {
		sp, ok := byParent[parent]
		if !ok {
			t.Fatalf("hop %d (%s %s): no span whose parent is %q in trace %s", i, h.service, h.kind, parent, tr.TraceID)
		}
		if got := tr.Processes[sp.ProcessID].ServiceName; got != h.service {
			t.Errorf("hop %d: span %q of service %q, want %q", i, sp.OperationName, got, h.service)
		}
		if got := sp.Tag("span.kind"); got != h.kind {
			t.Errorf("hop %d (%s): span.kind %q, want %q", i, h.service, got, h.kind)
		}
		if got := sp.Tag("weft.caller"); got != h.caller {
			t.Errorf("hop %d (%s %s): weft.caller %q, want %q", i, h.service, h.kind, got, h.caller)
		}
		if got := sp.Tag("weft.callee"); got != h.callee {
			t.Errorf("hop %d (%s %s): weft.callee %q, want %q", i, h.service, h.kind, got, h.callee)
		}
		out = append(out, sp)
		parent = sp.SpanID
	}
	return out
}

func splitTraceparent(t *testing.T, tp string) (tid, sid, flags string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || len(parts[2]) != 16 {
		t.Fatalf("traceparent %q is not version 00", tp)
	}
	return parts[1], parts[2], parts[3]
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}
