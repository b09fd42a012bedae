package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// JaegerVersion is the Jaeger the tracing tests run: the v2 binary, an
// OpenTelemetry Collector distribution configured by a YAML file.
const JaegerVersion = "1.75.0"

// JaegerBinaryEnv overrides where the jaeger binary is.
const JaegerBinaryEnv = "WEFT_JAEGER_BIN"

// JaegerCachedBinary is where the build is kept, outside the repository.
func JaegerCachedBinary() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "weft", "jaeger-"+JaegerVersion, "jaeger")
}

var jaegerBuildMu sync.Mutex

// JaegerBinary returns the path of jaeger 1.75.0, building it from
// test/tools/jaeger into the cache when missing (about 5 minutes, once
// per machine; `make jaeger` does the same). A file lock keeps test
// packages that run at the same time from building it twice.
func JaegerBinary() (string, error) {
	if p := os.Getenv(JaegerBinaryEnv); p != "" {
		return p, nil
	}
	path := JaegerCachedBinary()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	jaegerBuildMu.Lock()
	defer jaegerBuildMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("creating the jaeger cache directory: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("opening the jaeger build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking the jaeger build: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(path); err == nil {
		return path, nil // another package built it meanwhile
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "tools", "jaeger")
	fmt.Fprintf(os.Stderr, "building jaeger %s into %s (once per machine; several minutes)\n", JaegerVersion, path)
	tmp := path + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building jaeger %s in %s: %w\n%s", JaegerVersion, dir, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("installing the jaeger build: %w", err)
	}
	return path, nil
}

// Jaeger is a running Jaeger all-in-one with in-memory storage, every
// port on 127.0.0.1.
type Jaeger struct {
	*Process
	OTLPGRPC string // host:port of the OTLP gRPC receiver
	OTLPHTTP string // host:port of the OTLP HTTP receiver
	Query    string // http://host:port of the query API (and UI)
}

// jaegerConfig is the all-in-one's collector configuration: the OTLP
// receiver, memory storage, the query API and a health check, nothing
// else listening (no metrics endpoint, no other receiver).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %[1]s
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %[2]s
    grpc:
      endpoint: %[3]s
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %[4]s
      http:
        endpoint: %[5]s
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// StartJaeger builds Jaeger if needed, starts it on free loopback ports
// and waits (up to a minute) until its health check answers.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin, err := JaegerBinary()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, addr(0), addr(1), addr(2), addr(3), addr(4)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", "file:"+cfg)
	cmd.Dir = dir
	j := &Jaeger{OTLPGRPC: addr(3), OTLPHTTP: addr(4), Query: "http://" + addr(1)}
	j.Process = Start(t, "jaeger", cmd, Options{Group: true, LogTail: 40})
	health := "http://" + addr(0) + "/status"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-j.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	err = Poll(ctx, time.Minute, PollInterval, func() error {
		code, _, err := Get(ctx, health)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for jaeger's health check at %s: %v (did it exit? its log follows the test)", health, err)
	}
	return j
}

// JaegerTrace is a trace as Jaeger's query API (GET /api/traces/{id})
// returns it.
type JaegerTrace struct {
	TraceID   string `json:"traceID"`
	Spans     []JaegerSpan
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// JaegerSpan is one span of a JaegerTrace.
type JaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Type  string `json:"type"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

// Tag is the value of the span's tag key as text ("" if absent).
func (s JaegerSpan) Tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// Parent is the span ID of the span's parent (CHILD_OF), or "".
func (s JaegerSpan) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// ErrNoTrace is Trace's error for a trace Jaeger does not hold.
var ErrNoTrace = errors.New("jaeger holds no such trace")

// Trace reads the trace with the hex ID id through the query API.
func (j *Jaeger) Trace(id string) (*JaegerTrace, error) {
	resp, err := http.Get(j.Query + "/api/traces/" + id)
	if err != nil {
		return nil, fmt.Errorf("querying jaeger: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading jaeger's answer: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrNoTrace
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger answered %s: %s", resp.Status, body)
	}
	var out struct {
		Data []JaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decoding jaeger's answer: %w", err)
	}
	if len(out.Data) == 0 {
		return nil, ErrNoTrace
	}
	return &out.Data[0], nil
}

// WaitTrace waits (up to 30s) until Jaeger holds trace id with at least
// n spans, and returns it.
func (j *Jaeger) WaitTrace(t testing.TB, id string, n int) *JaegerTrace {
	t.Helper()
	var tr *JaegerTrace
	Eventually(t, fmt.Sprintf("%d spans of trace %s in jaeger", n, id), 30*time.Second, func() error {
		var err error
		tr, err = j.Trace(id)
		if err != nil {
			return err
		}
		if len(tr.Spans) < n {
			return fmt.Errorf("%d spans so far", len(tr.Spans))
		}
		return nil
	})
	return tr
}
