package local

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// This test binary plays every process the adapter deals with, chosen by
// its first argument (which the adapter passes) or, for processes the test
// starts itself, by WEFT_LOCAL_TEST_ROLE:
//
//	<test> weft-test-app [ignore-term]  a fake app (helperApp)
//	<test> --instance ...               a fake weft-proxy
//	<test> --node ...                   a fake node proxy
//	WEFT_LOCAL_TEST_ROLE=plugin         the adapter served over go-plugin
//	WEFT_LOCAL_TEST_ROLE=host           a stand-in for a controller that
//	                                    runs the adapter in memory and dies
//
// Arguments are checked first: the app and the sidecar inherit the
// environment of the plugin or host process that started them.
const (
	helperApp = "weft-test-app"
	roleEnv   = "WEFT_LOCAL_TEST_ROLE"
	reqEnv    = "WEFT_LOCAL_TEST_REQUEST"
	dialEnv   = "WEFT_LOCAL_TEST_DIAL"
	// fakeOutbound is the outbound listener every fake sidecar opens on
	// its instance address and reports in GET /config.
	fakeOutbound = 19001
)

func TestMain(m *testing.M) {
	switch {
	case len(os.Args) > 1 && os.Args[1] == helperApp:
		fakeApp(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "--instance":
		fakeProxy(os.Args[1:])
	case len(os.Args) > 1 && os.Args[1] == "--node":
		fakeNodeProxy(os.Args[1:]) // nodeproxy_test.go
	case os.Getenv(roleEnv) == "plugin":
		a := New()
		a.filePoll = 50 * time.Millisecond
		sdk.Serve(a)
	case os.Getenv(roleEnv) == "host":
		fakeHost()
	case os.Getenv(roleEnv) == "dial":
		dialOnce(os.Getenv(dialEnv))
	default:
		os.Exit(m.Run())
	}
	os.Exit(0)
}

// appInfo is what the fake app answers on GET /: what it was started with.
type appInfo struct {
	Args []string          `json:"args"`
	Env  map[string]string `json:"env"`
	Dir  string            `json:"dir"`
}

// fakeApp listens on $HOST:$PORT, answers GET / with appInfo and exits on
// SIGTERM (unless told to ignore it).
func fakeApp(args []string) {
	term := make(chan os.Signal, 1)
	if len(args) > 0 && args[0] == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake app:", err)
		os.Exit(3)
	}
	info := appInfo{Args: args, Env: map[string]string{}}
	info.Dir, _ = os.Getwd()
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "WEFT_") || strings.HasPrefix(k, "TEST_") || strings.HasPrefix(k, "PLUGIN_") || k == "HOST" || k == "PORT" {
			info.Env[k] = v
		}
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				// Failing while the test's file unhealthy-<instance> is
				// beside the readiness socket.
				if _, err := os.Stat(unhealthyFile(os.Getenv("TEST_READY"), os.Getenv("WEFT_INSTANCE"))); err == nil {
					http.Error(w, "unhealthy: told so by the test", http.StatusInternalServerError)
					return
				}
			}
			_ = json.NewEncoder(w).Encode(info)
		}))
	}()
	fmt.Println("fake app listening on", l.Addr())
	if sock := os.Getenv("TEST_READY"); sock != "" {
		// Tell the test this instance is listening.
		if c, err := net.Dial("unix", sock); err == nil {
			fmt.Fprintln(c, os.Getenv("WEFT_INSTANCE"))
			c.Close()
		}
	}
	<-term
}

// unhealthyFile is the file that makes the fake app of instance fail its
// /healthz while it exists.
func unhealthyFile(readySocket, instance string) string {
	return filepath.Join(filepath.Dir(readySocket), "unhealthy-"+instance)
}

// fakeProxy checks that it got a join token, records it in its data
// directory, listens on its admin address and exits on SIGTERM.
func fakeProxy(args []string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	fs := flag.NewFlagSet("fake-proxy", flag.ExitOnError)
	instance := fs.String("instance", "", "")
	var controllers []string
	fs.Func("controller", "", func(s string) error { controllers = append(controllers, s); return nil })
	bundle := fs.String("trust-bundle", "", "")
	admin := fs.String("admin", "", "")
	dataDir := fs.String("data-dir", "", "")
	_ = fs.Parse(args)
	tok := os.Getenv("WEFT_JOIN_TOKEN")
	if tok == "" || *instance == "" || len(controllers) == 0 || *dataDir == "" {
		fmt.Fprintln(os.Stderr, "fake proxy: missing token, --instance, --controller or --data-dir")
		os.Exit(3)
	}
	if _, err := os.Stat(*bundle); err != nil {
		fmt.Fprintln(os.Stderr, "fake proxy:", err)
		os.Exit(3)
	}
	f, err := os.OpenFile(filepath.Join(*dataDir, "tokens"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake proxy:", err)
		os.Exit(3)
	}
	fmt.Fprintln(f, tok)
	f.Close()
	l, err := net.Listen("tcp", *admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake proxy:", err)
		os.Exit(3)
	}
	defer l.Close()
	// Like weft-proxy: GET /config names the outbound listener, which
	// answers "outbound" to whoever connects.
	host, _, _ := net.SplitHostPort(*admin)
	out, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(fakeOutbound)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake proxy:", err)
		os.Exit(3)
	}
	defer out.Close()
	go serveGreeting(out, "outbound")
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/config" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintf(w, `{"version": "1", "config": {"upstreams": [{"name": "up", "bindAddress": %q, "localPort": %d}]}}`, host, fakeOutbound)
		}))
	}()
	fmt.Println("fake proxy for", *instance, "admin on", l.Addr())
	// The test's ready socket is beside its data directory, which holds
	// proxy/<id>.
	if c, err := net.Dial("unix", filepath.Join(*dataDir, "..", "..", "..", "ready.sock")); err == nil {
		fmt.Fprintln(c, "proxy:"+*instance)
		c.Close()
	}
	<-term
}

// serveGreeting answers greeting to the first bytes of every connection
// it accepts on l.
func serveGreeting(l net.Listener, greeting string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 512))
		_, _ = c.Write([]byte(greeting))
		c.Close()
	}
}

// dialOnce connects to addr and prints what it reads; it exits 0 when it
// read something, 1 when the connection failed.
func dialOnce(addr string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64)
	n, err := c.Read(b)
	if n == 0 {
		fmt.Println("nothing read:", err)
		os.Exit(1)
	}
	fmt.Printf("%s", b[:n])
	os.Exit(0)
}

// fakeHost runs the adapter in memory like a controller would, prints
// every snapshot as a JSON line, and never closes the adapter: the test
// kills it, as a controller dies.
func fakeHost() {
	var req sdk.ConfigureRequest
	if err := json.Unmarshal([]byte(os.Getenv(reqEnv)), &req); err != nil {
		fmt.Fprintln(os.Stderr, "fake host:", err)
		os.Exit(3)
	}
	a := newAdapter(hclog.New(&hclog.LoggerOptions{Output: os.Stderr}))
	a.procPoll, a.minBackoff = 20*time.Millisecond, 20*time.Millisecond
	resp, err := a.Configure(context.Background(), &req)
	if err != nil || sdk.HasErrors(resp.Diagnostics) {
		fmt.Fprintln(os.Stderr, "fake host: configure:", err, resp)
		os.Exit(3)
	}
	events := make(chan sdk.WatchEvent)
	go func() {
		err := a.Watch(context.Background(), &sdk.WatchRequest{}, events)
		fmt.Fprintln(os.Stderr, "fake host: watch returned:", err)
		os.Exit(3)
	}()
	out := bufio.NewWriter(os.Stdout)
	for ev := range events {
		b, _ := json.Marshal(ev.Snapshot)
		out.Write(append(b, '\n'))
		out.Flush()
	}
}

// testBinary is the path of this test binary.
func testBinary(t testing.TB) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testSecret stands for the controller's join secret.
var testSecret = []byte("weft local adapter test secret, 32")

// testSetup is one adapter's world: a workloads file, a data directory and
// a /24 of loopback addresses of its own, so that tests (and other
// packages' tests) running at the same time don't meet.
type testSetup struct {
	dir      string
	file     string
	dataDir  string
	first    string // first_address
	prefix   string // "127.a.b."
	joinKey  []byte
	port     int // the app port every service uses
	services map[string]int
	ready    *readiness
}

func newSetup(t *testing.T) *testSetup {
	t.Helper()
	dir := t.TempDir()
	rd := &readiness{seen: map[string]int{}, changed: make(chan struct{})}
	l, err := net.Listen("unix", filepath.Join(dir, "ready.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			rd.add(strings.TrimSpace(line))
		}
	}()
	a, b := 100+rand.IntN(100), 1+rand.IntN(254)
	prefix := fmt.Sprintf("127.%d.%d.", a, b)
	return &testSetup{
		dir:     dir,
		file:    filepath.Join(dir, "workloads.hcl"),
		dataDir: filepath.Join(dir, "data"),
		first:   prefix + "2",
		prefix:  prefix,
		joinKey: ca.DeriveJoinKey(testSecret, "local"),
		port:    18080,
		ready:   rd,
	}
}

// readiness counts the "I listen" messages of fake apps ("api-0") and
// fake sidecars ("proxy:api-0").
type readiness struct {
	mu      sync.Mutex
	seen    map[string]int
	changed chan struct{}
}

func (r *readiness) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[id]++
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *readiness) count(id string) (int, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id], r.changed
}

func (s *testSetup) readySocket() string { return filepath.Join(s.dir, "ready.sock") }

// waitReady waits until the n-th process named id (an instance ID for its
// app, "proxy:<id>" for its sidecar) has started listening.
func (s *testSetup) waitReady(t *testing.T, id string, n int) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		got, changed := s.ready.count(id)
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("process %s #%d did not listen within 15s", id, n)
		}
	}
}

// writeWorkloads writes a workloads file running the fake app for each
// service (name -> instances). extra goes into every service block.
func (s *testSetup) writeWorkloads(t *testing.T, services map[string]int, extra string) {
	t.Helper()
	var b strings.Builder
	for name, n := range services {
		fmt.Fprintf(&b, "service %q {\n  command = %q\n  args = [%q]\n  instances = %d\n  port = %d\n  env = { TEST_UPSTREAM = \"http://${HOST}:9001\", TEST_READY = %q }\n  meta = { version = \"v1\" }\n%s\n}\n",
			name, testBinary(t), helperApp, n, s.port, s.readySocket(), extra)
	}
	// Write then rename, so that a poll never reads half a file.
	tmp := s.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.file); err != nil {
		t.Fatal(err)
	}
	s.services = services
}

func (s *testSetup) request(t testing.TB) *sdk.ConfigureRequest {
	return &sdk.ConfigureRequest{
		Source: s.file,
		// The tests of process supervision talk to the apps directly; the
		// guard's own tests (guard_test.go) turn it on.
		Options: map[string]string{OptionFirstAddress: s.first, OptionIsolation: isolationNone},
		Mesh: sdk.MeshContext{
			TrustDomain:     "weft.test",
			ControllerAddrs: []string{"127.0.0.1:1", "127.0.0.1:2"},
			TrustBundlePEM:  []byte("-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n"),
			JoinKey:         s.joinKey,
			ProxyBinary:     testBinary(t),
			DataDir:         s.dataDir,
		},
	}
}

// newTestAdapter returns an adapter with short timings and a test logger;
// it is closed when the test ends.
func newTestAdapter(t *testing.T) *Adapter {
	t.Helper()
	a := newAdapter(hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: testWriter{t}, Level: hclog.Debug}))
	a.filePoll = 50 * time.Millisecond
	a.procPoll = 20 * time.Millisecond
	a.minBackoff = 20 * time.Millisecond
	a.maxBackoff = 200 * time.Millisecond
	t.Cleanup(func() { _ = a.Close() })
	return a
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitTimeout bounds every wait for a snapshot.
const waitTimeout = 15 * time.Second

// watch runs a.Watch until the test ends, when it must return nil within
// 5 s, and returns its events.
func watch(t *testing.T, a sdk.Adapter) <-chan sdk.WatchEvent {
	t.Helper()
	w := sdktest.Watch(t, a)
	w.WantNil, w.CancelTimeout = true, 5*time.Second
	return w.Events
}

// allPassing accepts a snapshot with exactly ids, every one passing with
// its sidecar running.
func allPassing(ids ...string) func(sdk.WatchEvent) bool {
	return func(ev sdk.WatchEvent) bool {
		if len(ev.Snapshot.Instances) != len(ids) {
			return false
		}
		for i, in := range ev.Snapshot.Instances {
			if in.ID != ids[i] || in.Health != "passing" || in.Labels["proxy_pid"] == "" {
				return false
			}
		}
		return true
	}
}

// pids returns the app and sidecar pids of each instance of a snapshot.
func pids(ev sdk.WatchEvent) map[string][2]string {
	m := map[string][2]string{}
	for _, in := range ev.Snapshot.Instances {
		m[in.ID] = [2]string{in.Labels["pid"], in.Labels["proxy_pid"]}
	}
	return m
}

// withoutIsolation drops the warning that the tests' isolation = none
// brings to every snapshot.
func withoutIsolation(ds []sdk.Diagnostic) []sdk.Diagnostic {
	var out []sdk.Diagnostic
	for _, d := range ds {
		if d.Summary != "Isolation off" {
			out = append(out, d)
		}
	}
	return out
}
