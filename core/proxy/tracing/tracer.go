package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/spiffe"
)

// Options tune a Tracer. The zero value is usable.
type Options struct {
	// Logger receives export failures (at most one line a minute) and
	// exporter changes. Default: slog.Default().
	Logger *slog.Logger
	// Registerer, when set, takes the tracer's counters:
	// weft_tracing_spans_total{outcome="exported|dropped|failed"}.
	Registerer prometheus.Registerer
}

// Self is the sidecar's own identity, which its spans carry.
type Self struct {
	ID        string // SPIFFE ID
	Service   string
	Namespace string
}

// Tracer starts and exports this sidecar's spans. Its methods are safe for
// concurrent use; Inbound and Outbound cost one atomic load when tracing
// is off.
type Tracer struct {
	opts Options
	st   atomic.Pointer[state] // nil: off
	mu   sync.Mutex            // serializes Apply and Close
	exp  *exporter             // the running exporter, or nil

	exported, dropped, failed prometheus.Counter
	lastErrLog                atomic.Int64 // unix nanos of the last export error logged
}

// state is what Apply swaps in whole.
type state struct {
	tracer  trace.Tracer
	sampler *ratioSampler
	self    Self
	selfID  spiffe.Identity // self.ID parsed
}

// New returns a Tracer that is off until Apply gives it a configuration.
func New(o Options) *Tracer {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_tracing_spans_total",
		Help: "Finished sampled spans by outcome: exported to the collector, dropped (the export queue was full), or failed (the collector refused or could not be reached).",
	}, []string{"outcome"})
	if o.Registerer != nil {
		o.Registerer.MustRegister(vec)
	}
	return &Tracer{opts: o, exported: vec.WithLabelValues("exported"), dropped: vec.WithLabelValues("dropped"), failed: vec.WithLabelValues("failed")}
}

// Validate says what is wrong with cfg, or nil. A nil cfg is valid (off).
func Validate(cfg *meshapi.Tracing) error {
	if cfg == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(cfg.GetEndpoint())
	if err != nil || host == "" {
		return fmt.Errorf("tracing endpoint %q is not host:port", cfg.GetEndpoint())
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("tracing endpoint %q: the port is not from 1 to 65535", cfg.GetEndpoint())
	}
	if s := cfg.GetSampling(); math.IsNaN(s) || s < 0 || s > 1 {
		return fmt.Errorf("tracing sampling %g is not a fraction from 0 to 1", s)
	}
	if _, ok := meshapi.TracingProtocol_name[int32(cfg.GetProtocol())]; !ok {
		return fmt.Errorf("tracing: unknown protocol %d", cfg.GetProtocol())
	}
	if cfg.GetMaxBatch() == 0 || cfg.GetMaxQueue() < cfg.GetMaxBatch() || cfg.GetMaxQueue() > 1<<16 {
		return fmt.Errorf("tracing: max_batch %d and max_queue %d: want 1 <= max_batch <= max_queue <= 65536", cfg.GetMaxBatch(), cfg.GetMaxQueue())
	}
	if d := cfg.GetBatchTimeout().AsDuration(); d <= 0 || d > time.Minute {
		return fmt.Errorf("tracing: batch_timeout %s is not from 1ns to 1m", d)
	}
	return nil
}

// Apply turns tracing on, changes it or (cfg nil) turns it off. A change
// of sampling or identity applies to the next request; a change of the
// collector, protocol, service name or batching replaces the exporter,
// and the old one flushes what it holds in the background. It fails only
// for a cfg that Validate refuses.
func (t *Tracer) Apply(cfg *meshapi.Tracing, self Self) error {
	if err := Validate(cfg); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cfg == nil {
		t.st.Store(nil)
		if old := t.exp; old != nil {
			t.exp = nil
			go old.shutdown()
			t.opts.Logger.Info("tracing: off")
		}
		return nil
	}
	if t.exp == nil || !sameExporter(t.exp.cfg, cfg) {
		exp, err := t.newExporter(cfg)
		if err != nil {
			return err
		}
		if old := t.exp; old != nil {
			go old.shutdown()
		}
		t.exp = exp
		t.opts.Logger.Info("tracing: exporting spans", "endpoint", cfg.GetEndpoint(), "protocol", protocolName(cfg.GetProtocol()),
			"service_name", cfg.GetServiceName(), "sampling", cfg.GetSampling())
	}
	t.exp.sampler.set(cfg.GetSampling())
	selfID, _ := spiffe.Parse(self.ID) // checked by the proxy; zero if not
	t.st.Store(&state{tracer: t.exp.tracer, sampler: t.exp.sampler, self: self, selfID: selfID})
	return nil
}

// sameExporter reports whether a and b need the same exporter: they
// differ at most in sampling.
func sameExporter(a, b *meshapi.Tracing) bool {
	a2, b2 := proto.Clone(a).(*meshapi.Tracing), proto.Clone(b).(*meshapi.Tracing)
	a2.Sampling, b2.Sampling = 0, 0
	return proto.Equal(a2, b2)
}

// Enabled reports whether tracing is on.
func (t *Tracer) Enabled() bool { return t.st.Load() != nil }

// Flush exports every finished span now; for tests and shutdown.
func (t *Tracer) Flush(ctx context.Context) error {
	t.mu.Lock()
	exp := t.exp
	t.mu.Unlock()
	if exp == nil {
		return nil
	}
	return exp.provider.ForceFlush(ctx)
}

// Close turns tracing off and flushes what the exporter holds, within
// ctx.
func (t *Tracer) Close(ctx context.Context) error {
	t.mu.Lock()
	exp := t.exp
	t.exp = nil
	t.st.Store(nil)
	t.mu.Unlock()
	if exp == nil {
		return nil
	}
	return exp.provider.Shutdown(ctx)
}

// Span is one hop's span. A nil *Span (tracing off) ignores every call.
type Span struct {
	span trace.Span
	grpc bool
}

// Inbound starts the server span of a request this sidecar received from
// caller, continuing the caller's trace context, and writes the new
// context onto r's headers for the application. It returns nil when
// tracing is off.
func (t *Tracer) Inbound(r *http.Request, caller spiffe.Identity) *Span {
	st := t.st.Load()
	if st == nil {
		return nil
	}
	return st.start(r, trace.SpanKindServer, "inbound "+st.self.Service, hopIDs{caller: caller, callee: st.self.ID, service: st.self.Service})
}

// Outbound starts the client span of a request the application sends to
// the upstream service (SPIFFE ID calleeID) and writes its context onto
// r's headers for the upstream. It returns nil when tracing is off.
func (t *Tracer) Outbound(r *http.Request, service, calleeID string) *Span {
	st := t.st.Load()
	if st == nil {
		return nil
	}
	return st.start(r, trace.SpanKindClient, "outbound "+service, hopIDs{caller: st.selfID, callerID: st.self.ID, callee: calleeID, service: service, outbound: true})
}

// hopIDs are who calls whom on a hop, turned into attributes only when
// the span is recorded.
type hopIDs struct {
	caller   spiffe.Identity
	callerID string // caller's SPIFFE ID when known as text
	callee   string // SPIFFE ID
	service  string // the callee's service
	outbound bool
}

func (h hopIDs) attributes(r *http.Request, grpc bool) []attribute.KeyValue {
	dir, callerID := "inbound", h.callerID
	if h.outbound {
		dir = "outbound"
	}
	if callerID == "" {
		callerID = h.caller.String()
	}
	attrs := []attribute.KeyValue{
		attribute.String("weft.direction", dir),
		attribute.String("weft.caller", callerID),
		attribute.String("weft.caller.service", h.caller.Service),
		attribute.String("weft.callee", h.callee),
		attribute.String("weft.service", h.service),
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
	}
	if grpc {
		attrs = append(attrs, attribute.String("rpc.system", "grpc"))
	}
	return attrs
}

func (st *state) start(r *http.Request, kind trace.SpanKind, name string, ids hopIDs) *Span {
	parent, ok := Extract(r.Header)
	ctx := context.Background()
	switch {
	case ok && parent.HasIDs:
		if !parent.Decided {
			parent.Sampled = st.sampler.sample(parent.TraceID)
		}
		flags := trace.TraceFlags(0)
		if parent.Sampled {
			flags = trace.FlagsSampled
		}
		ts, _ := trace.ParseTraceState(parent.TraceState)
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: parent.TraceID, SpanID: parent.SpanID, TraceFlags: flags, TraceState: ts, Remote: true,
		}))
	case ok: // a decision alone: a new trace with it
		ctx = withDecision(ctx, parent.Sampled)
	}
	grpc := isGRPC(r)
	_, span := st.tracer.Start(ctx, name, trace.WithSpanKind(kind))
	if span.IsRecording() { // unsampled: no attributes built
		span.SetAttributes(ids.attributes(r, grpc)...)
	}
	sc := span.SpanContext()
	c := Child{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Sampled: sc.IsSampled(), TraceState: parent.TraceState}
	if parent.HasIDs {
		c.ParentID = parent.SpanID
	}
	Inject(r.Header, c, parent.Formats)
	return &Span{span: span, grpc: grpc}
}

// Outcome is how a hop ended, for End.
type Outcome struct {
	Status     int    // HTTP status sent back
	GRPCStatus string // the grpc-status, "" if none
	// Outbound only:
	Route, Subset string
	Endpoint      string // the upstream instance (host:port) of the last try
	Tries         int
	Err           string // why the proxy answered itself, if it did
}

// End records o on the span and ends it.
func (s *Span) End(o Outcome) {
	if s == nil {
		return
	}
	sp := s.span
	if sp.IsRecording() {
		sp.SetAttributes(attribute.Int("http.response.status_code", o.Status))
		if o.GRPCStatus != "" {
			if n, err := strconv.Atoi(o.GRPCStatus); err == nil {
				sp.SetAttributes(attribute.Int("rpc.grpc.status_code", n))
			}
		}
		if o.Route != "" {
			sp.SetAttributes(attribute.String("weft.route", o.Route))
		}
		if o.Subset != "" {
			sp.SetAttributes(attribute.String("weft.subset", o.Subset))
		}
		if o.Endpoint != "" {
			sp.SetAttributes(attribute.String("weft.upstream.instance", o.Endpoint))
			if host, port, err := net.SplitHostPort(o.Endpoint); err == nil {
				p, _ := strconv.Atoi(port)
				sp.SetAttributes(attribute.String("server.address", host), attribute.Int("server.port", p))
			}
		}
		if o.Tries > 0 {
			sp.SetAttributes(attribute.Int("weft.retry_count", o.Tries-1))
		}
		switch {
		case o.Err != "":
			sp.SetStatus(codes.Error, o.Err)
		case o.Status >= 500:
			sp.SetStatus(codes.Error, http.StatusText(o.Status))
		case s.grpc && o.GRPCStatus != "" && o.GRPCStatus != "0":
			sp.SetStatus(codes.Error, "grpc-status "+o.GRPCStatus)
		}
	}
	sp.End()
}

// TraceID is the span's trace ID in hex, or "" (for logs).
func (s *Span) TraceID() string {
	if s == nil {
		return ""
	}
	return s.span.SpanContext().TraceID().String()
}

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return len(ct) >= 16 && ct[:16] == "application/grpc"
}

func protocolName(p meshapi.TracingProtocol) string {
	if p == meshapi.TracingProtocol_TRACING_PROTOCOL_HTTP {
		return "http"
	}
	return "grpc"
}

// logExportError logs err at most once a minute.
func (t *Tracer) logExportError(endpoint string, n int, err error) {
	now := time.Now().UnixNano()
	last := t.lastErrLog.Load()
	if now-last < int64(time.Minute) || !t.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	t.opts.Logger.Warn("tracing: exporting spans to the collector failed; they are dropped (weft_tracing_spans_total{outcome=\"failed\"} counts them)",
		"endpoint", endpoint, "spans", n, "err", err)
}

var errClosed = errors.New("the exporter is shut down")
