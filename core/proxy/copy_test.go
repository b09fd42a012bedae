package proxy_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// TestTCPCopyBursts: the TCP pass-through, which holds no buffer between
// bursts (copy.go), carries every byte both ways, in order, for writes
// of every size: many small writes in a row (several TLS records in one
// read from the socket, which must not wait there for more), writes
// larger than a copy buffer and a TLS record, and a half-close at the
// end that the app sees as EOF.
func TestTCPCopyBursts(t *testing.T) {
	app := serveConns(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	m := newMesh(t, app, meshapi.Protocol_PROTOCOL_TCP, allowWeb())
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name   string
		writes []int // sizes, written without waiting for the echo
	}{
		{"one byte", []int{1}},
		{"many small writes", repeat(200, 7)},
		{"record-sized", []int{16 << 10, 16<<10 + 1, 16<<10 - 1}},
		{"large", []int{1 << 20, 3, 300 << 10}},
		{"mixed", func() []int {
			var s []int
			for range 100 {
				s = append(s, 1+rng.IntN(40<<10))
			}
			return s
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", m.outbound, wait)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(wait))
			var sent bytes.Buffer
			for _, n := range tt.writes {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				sent.Write(b)
			}
			werr := make(chan error, 1)
			go func() {
				rest := sent.Bytes()
				for _, n := range tt.writes {
					if _, err := c.Write(rest[:n]); err != nil {
						werr <- err
						return
					}
					rest = rest[n:]
				}
				werr <- c.(*net.TCPConn).CloseWrite()
			}()
			start := time.Now()
			got, err := io.ReadAll(c) // ends with the app's half-close
			if err != nil {
				t.Fatalf("reading the echo after %v (%d of %d bytes): %v", time.Since(start), len(got), sent.Len(), err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, sent.Bytes()) {
				t.Fatalf("echo of %d bytes differs from the %d sent", len(got), sent.Len())
			}
			t.Logf("%d bytes both ways in %v", sent.Len(), time.Since(start))
		})
	}
}

func repeat(n, v int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}
