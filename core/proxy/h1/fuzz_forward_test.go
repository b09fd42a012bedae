package h1_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// FuzzForward sends any bytes through a forwarder to a net/http
// application, then closes its side for writing: the forwarder must not
// panic and must end the connection within ioBound, whatever the bytes
// (bodies cut short, chunk lines, trailers, pipelined heads, upgrades).
//
//	go test -run '^$' -fuzz '^FuzzForward$' -fuzztime 10s ./core/proxy/h1
func FuzzForward(f *testing.F) {
	for _, file := range []string{"testdata/valid.txt", "testdata/refused.txt"} {
		for _, c := range readCorpus(f, file) {
			f.Add(c.raw)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	app := &http.Server{Handler: &recorder{}, ReadHeaderTimeout: ioBound}
	go app.Serve(ln)
	f.Cleanup(func() { app.Close() })
	fw := benchForwarder(ln.Addr().String())
	fw.Limits.MaxHeaderBytes = 4096
	addr := serveForwarder(f, fw)
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetDeadline(start.Add(ioBound))
		go func() {
			c.Write(raw)
			c.(*net.TCPConn).CloseWrite()
		}()
		_, err = io.Copy(io.Discard, c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the forwarder held the connection past %s on:\n%q", ioBound, raw)
		}
	})
}
