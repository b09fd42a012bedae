package mirror

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// counts records what a Sender counted.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) add(service, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[service+"/"+result]++
}

func (c *counts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// TestSenderCopiesRequest: a copy reaches the mirror over HTTP/2 and TLS
// with its method, path, body and headers, the Host marked "-shadow" and
// no hop-by-hop header; it is counted as sent.
func TestSenderCopiesRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		got <- r
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)

	c := &counts{n: map[string]int{}}
	var dialedFor string
	s := NewSender(Options{
		Dialer: func(wantID string) func(ctx context.Context, addr string) (net.Conn, error) {
			dialedFor = wantID
			cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
			cfg.NextProtos = []string{"h2"}
			return func(ctx context.Context, addr string) (net.Conn, error) {
				return (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
			}
		},
		Counted: c.add,
		Logger:  slog.New(slog.DiscardHandler),
	})
	defer s.Close()
	target := Compile(&meshapi.Mirror{Service: "shadow", SpiffeId: "spiffe://weft.test/ns/default/svc/shadow", Percent: 100,
		Endpoints: []*meshapi.Endpoint{{InstanceId: "shadow-1", Address: host, Port: uint32(p)}}})

	r := httptest.NewRequest("POST", "http://api/orders?id=1", nil)
	r.Header.Set("X-Trace", "t1")
	r.Header.Set("Connection", "keep-alive")
	s.Send(r, []byte("order"), target)

	select {
	case m := <-got:
		if m.Method != "POST" || m.URL.Path != "/orders" || m.URL.RawQuery != "id=1" || m.Host != "api-shadow" || m.ProtoMajor != 2 {
			t.Errorf("the mirror got %s %s?%s host %s over HTTP/%d", m.Method, m.URL.Path, m.URL.RawQuery, m.Host, m.ProtoMajor)
		}
		if m.Header.Get("X-Trace") != "t1" || m.Header.Get("Connection") != "" {
			t.Errorf("the mirror got headers %v", m.Header)
		}
		if b := <-bodies; b != "order" {
			t.Errorf("the mirror got body %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no copy reached the mirror")
	}
	if dialedFor != "spiffe://weft.test/ns/default/svc/shadow" {
		t.Errorf("dialed requiring %q, want the mirror's SPIFFE ID", dialedFor)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.get("shadow/sent") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("counts %v, want one sent", c.n)
		}
		time.Sleep(5 * time.Millisecond) // the count follows the response: bounded by deadline
	}
}

// TestSenderDropsPastMaxInFlight: with every slot taken a copy is dropped
// and counted, not queued; a target with no endpoint drops too.
func TestSenderDropsPastMaxInFlight(t *testing.T) {
	c := &counts{n: map[string]int{}}
	s := NewSender(Options{
		Dialer: func(string) func(context.Context, string) (net.Conn, error) {
			return func(context.Context, string) (net.Conn, error) { return nil, io.ErrUnexpectedEOF }
		},
		Counted: c.add,
		Logger:  slog.New(slog.DiscardHandler),
	})
	defer s.Close()
	for range MaxInFlight {
		s.slots <- struct{}{}
	}
	target := Compile(&meshapi.Mirror{Service: "shadow", Endpoints: []*meshapi.Endpoint{{InstanceId: "s", Address: "127.0.0.1", Port: 1}}})
	s.Send(httptest.NewRequest("GET", "/", nil), nil, target)
	if c.get("shadow/dropped") != 1 {
		t.Errorf("counts %v, want one dropped with every slot taken", c.n)
	}
	for range MaxInFlight {
		<-s.slots
	}
	empty := Compile(&meshapi.Mirror{Service: "none"})
	s.Send(httptest.NewRequest("GET", "/", nil), nil, empty)
	if c.get("none/dropped") != 1 || len(s.slots) != 0 {
		t.Errorf("counts %v, slots held %d; want one dropped and the slot given back", c.n, len(s.slots))
	}
	if Compile(nil) != nil {
		t.Error("no mirror compiled to a target")
	}
}
