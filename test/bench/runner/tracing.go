package runner

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/core/policy"
)

// The tracing scenarios (issue 14) run the same HTTP load with Weft's
// sidecars tracing off, at 1% and at 100% of new traces sampled; the
// sidecars export to traceSink, an OTLP/HTTP receiver in the runner that
// reads and discards every batch (a collector costs the proxies nothing
// more than a socket write). The tracing is changed on the running chain,
// as a policy change would, without restarting the proxies. The other
// candidates do not trace; they run the load as references.

// traceSink is the OTLP/HTTP endpoint the traced scenarios export to.
type traceSink struct {
	addr            string
	batches, bytesN atomic.Int64
	srv             *http.Server
}

func startTraceSink() (*traceSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for spans: %w", err)
	}
	s := &traceSink{addr: ln.Addr().String()}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		s.batches.Add(1)
		s.bytesN.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	})}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *traceSink) stop() { s.srv.Close() }

// tracingPolicy is the mesh's tracing block for a scenario's Tracing:
// nil for "" and "off".
func tracingPolicy(sampling, sink string) (*policy.Tracing, error) {
	if sampling == "" || sampling == "off" {
		return nil, nil
	}
	f, err := strconv.ParseFloat(sampling, 64)
	if err != nil || f < 0 || f > 1 {
		return nil, fmt.Errorf("scenario tracing %q is not off or a fraction", sampling)
	}
	return &policy.Tracing{Sampling: f, Endpoint: sink, Protocol: policy.TracingHTTP, ServiceName: "{service}",
		MaxBatch: 512, MaxQueue: 2048, BatchTimeout: time.Second}, nil
}

// setTracing gives the running chain's sidecars the scenario's tracing
// and waits until both acknowledged it.
func (w *weftCand) setTracing(sampling string) error {
	t, err := tracingPolicy(sampling, w.e.sink.addr)
	if err != nil {
		return err
	}
	if (t == nil && w.mesh.Tracing == nil) || (t != nil && w.mesh.Tracing != nil && *t == *w.mesh.Tracing) {
		return nil
	}
	v0 := w.e.ctl.Version("client-1")
	w.mesh.Tracing = t
	w.mesh.apply(w.e.ctl)
	deadline := time.Now().Add(10 * time.Second)
	for w.e.ctl.Version("client-1") == v0 || !w.e.ctl.acked("server-1") || !w.e.ctl.acked("client-1") {
		if time.Now().After(deadline) {
			return errors.New("the sidecars did not acknowledge the tracing change within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
