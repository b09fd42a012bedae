package tracing

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/core/meshapi"
)

// exportTimeout bounds one export; a failed batch is dropped and counted,
// never retried, so that a slow collector costs spans, not memory.
const exportTimeout = 10 * time.Second

// exporter is one configuration's OTLP exporter with its provider,
// sampler and batching queue.
type exporter struct {
	cfg      *meshapi.Tracing
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	sampler  *ratioSampler
}

func (t *Tracer) newExporter(cfg *meshapi.Tracing) (*exporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	ctx := context.Background()
	if cfg.GetProtocol() == meshapi.TracingProtocol_TRACING_PROTOCOL_HTTP {
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(cfg.GetEndpoint()), otlptracehttp.WithInsecure(),
			otlptracehttp.WithTimeout(exportTimeout), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	} else {
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(cfg.GetEndpoint()), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithTimeout(exportTimeout), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	}
	if err != nil {
		return nil, err
	}
	sampler := &ratioSampler{}
	b := newBatcher(exp, int(cfg.GetMaxBatch()), int(cfg.GetMaxQueue()), cfg.GetBatchTimeout().AsDuration(), t, cfg.GetEndpoint())
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sampler)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", cfg.GetServiceName()),
			attribute.String("telemetry.sdk.language", "go"), attribute.String("weft.component", "weft-proxy"))),
		sdktrace.WithSpanProcessor(b),
	)
	return &exporter{cfg: cfg, provider: tp, tracer: tp.Tracer("github.com/weftmesh/weft/core/proxy"), sampler: sampler}, nil
}

// shutdown flushes what the exporter holds, within exportTimeout.
func (e *exporter) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	_ = e.provider.Shutdown(ctx)
}

// ratioSampler samples a new trace when its trace ID falls under the
// configured fraction (the same rule as OpenTelemetry's TraceIDRatioBased,
// so that every sidecar decides alike for a trace ID), or as a decision
// that came alone (a bare "b3: 1") says. Its fraction changes without a
// new provider.
type ratioSampler struct {
	bound atomic.Uint64 // sampled when the ID's low 63 bits are below it
}

func (s *ratioSampler) set(f float64) {
	switch {
	case f >= 1:
		s.bound.Store(math.MaxUint64)
	case f <= 0:
		s.bound.Store(0)
	default:
		s.bound.Store(uint64(f * (1 << 63)))
	}
}

func (s *ratioSampler) sample(id trace.TraceID) bool {
	b := s.bound.Load()
	return b == math.MaxUint64 || binary.BigEndian.Uint64(id[8:16])>>1 < b
}

func (s *ratioSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	res := sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
	sampled := s.sample(p.TraceID)
	if d, ok := p.ParentContext.Value(decisionKey{}).(bool); ok {
		sampled = d
	}
	if sampled {
		res.Decision = sdktrace.RecordAndSample
	}
	return res
}

func (s *ratioSampler) Description() string { return "weft.ratio" }

type decisionKey struct{}

func withDecision(ctx context.Context, sampled bool) context.Context {
	return context.WithValue(ctx, decisionKey{}, sampled)
}

// batcher is the span processor: it queues finished sampled spans in a
// bounded channel (a full queue drops the span and counts it: a request
// never waits for the collector) and exports them in batches of up to
// maxBatch, at least every timeout.
type batcher struct {
	exp      sdktrace.SpanExporter
	t        *Tracer
	endpoint string
	queue    chan sdktrace.ReadOnlySpan
	maxBatch int
	timeout  time.Duration
	flush    chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func newBatcher(exp sdktrace.SpanExporter, maxBatch, maxQueue int, timeout time.Duration, t *Tracer, endpoint string) *batcher {
	b := &batcher{exp: exp, t: t, endpoint: endpoint, queue: make(chan sdktrace.ReadOnlySpan, maxQueue), maxBatch: maxBatch, timeout: timeout,
		flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case <-b.stop:
		b.t.dropped.Inc()
	case b.queue <- s:
	default:
		b.t.dropped.Inc()
	}
}

func (b *batcher) run() {
	defer close(b.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, b.maxBatch)
	timer := time.NewTimer(b.timeout)
	defer timer.Stop()
	send := func() {
		if len(batch) > 0 {
			b.export(batch)
			clear(batch)
			batch = batch[:0]
		}
		timer.Reset(b.timeout)
	}
	drain := func() {
		for {
			select {
			case s := <-b.queue:
				batch = append(batch, s)
				if len(batch) == b.maxBatch {
					send()
				}
			default:
				send()
				return
			}
		}
	}
	for {
		select {
		case s := <-b.queue:
			batch = append(batch, s)
			if len(batch) == b.maxBatch {
				send()
			}
		case <-timer.C:
			send()
		case ack := <-b.flush:
			drain()
			close(ack)
		case <-b.stop:
			drain()
			return
		}
	}
}

func (b *batcher) export(spans []sdktrace.ReadOnlySpan) {
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	if err := b.exp.ExportSpans(ctx, spans); err != nil {
		b.t.failed.Add(float64(len(spans)))
		b.t.logExportError(b.endpoint, len(spans), err)
		return
	}
	b.t.exported.Add(float64(len(spans)))
}

func (b *batcher) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case b.flush <- ack:
	case <-b.done:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) Shutdown(ctx context.Context) error {
	b.once.Do(func() { close(b.stop) })
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.exp.Shutdown(ctx)
}
