package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ServeOptions say where the backend listens; an empty address is not
// served.
type ServeOptions struct {
	HTTP string // HTTP/1.1 and h2c: GET /1k answers 1024 bytes
	GRPC string // gRPC health service (h2c)
	TCP  string // echo
}

// Serve runs the backend until ctx ends. ready is called once every
// listener is bound.
func Serve(ctx context.Context, o ServeOptions, ready func()) error {
	body := bytes.Repeat([]byte("x"), 1024)
	var lns []net.Listener
	listen := func(addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		lns = append(lns, ln)
		return ln, nil
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	errc := make(chan error, 3)
	if o.HTTP != "" {
		ln, err := listen(o.HTTP)
		if err != nil {
			return err
		}
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", "1024")
			w.Write(body)
		})}
		go func() { errc <- srv.Serve(ln) }()
		defer srv.Close()
	}
	if o.GRPC != "" {
		ln, err := listen(o.GRPC)
		if err != nil {
			return err
		}
		g := grpc.NewServer()
		healthpb.RegisterHealthServer(g, health.NewServer())
		go func() { errc <- g.Serve(ln) }()
		defer g.Stop()
	}
	if o.TCP != "" {
		ln, err := listen(o.TCP)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					errc <- err
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 16<<10)
					io.CopyBuffer(c, c, buf)
				}()
			}
		}()
	}
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
