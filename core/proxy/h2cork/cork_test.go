package h2cork_test

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/core/proxy/h2cork"
)

// recorder is the connection under a Conn: it keeps each write apart.
type recorder struct {
	net.Conn // nil: only Write and Close are called
	mu       sync.Mutex
	writes   [][]byte
	wrote    chan struct{}
}

func newRecorder() *recorder { return &recorder{wrote: make(chan struct{}, 64)} }

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(p))
	r.mu.Unlock()
	r.wrote <- struct{}{}
	return len(p), nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes)
}

// frame is one write the HTTP/2 side makes: the bytes x/net/http2's
// framer encodes.
type frame func(fr *http2.Framer) error

func settings(fr *http2.Framer) error { return fr.WriteSettings() }
func headers(id uint32, end bool) frame {
	return func(fr *http2.Framer) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x88}, EndStream: end, EndHeaders: true})
	}
}
func data(id uint32, end bool, n int) frame {
	return func(fr *http2.Framer) error { return fr.WriteData(id, end, make([]byte, n)) }
}
func ping(fr *http2.Framer) error { return fr.WritePing(true, [8]byte{1}) }
func rst(id uint32) frame {
	return func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) }
}
func windowUpdate(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, 1000) }

func encode(t *testing.T, fs ...frame) []byte {
	t.Helper()
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	for _, f := range fs {
		if err := f(fr); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestCoalescing(t *testing.T) {
	preface := []byte(http2.ClientPreface)
	tests := []struct {
		name   string
		side   h2cork.Side
		writes [][]frame // each inner slice is one Write
		raw    [][]byte  // writes of raw bytes instead of frames
		want   []int     // how many of the writes each write below carries
	}{
		{
			name: "unary response: headers, data, trailers in one write",
			side: h2cork.Server,
			writes: [][]frame{
				{settings}, {headers(1, false)}, {data(1, false, 7)}, {headers(1, true)},
			},
			want: []int{1, 3},
		},
		{
			name: "unary request: headers, data, end in one write",
			side: h2cork.Client,
			raw:  [][]byte{preface},
			writes: [][]frame{
				{settings, windowUpdate}, {headers(1, false)}, {data(1, false, 5)}, {data(1, true, 0)},
			},
			want: []int{1, 1, 3}, // the preface goes as it comes
		},
		{
			name: "a connection-level frame sends the hold with it",
			side: h2cork.Server,
			writes: [][]frame{
				{settings}, {headers(1, false)}, {ping}, {data(1, true, 3)},
			},
			want: []int{1, 2, 1},
		},
		{
			name: "a reset sends the hold with it",
			side: h2cork.Server,
			writes: [][]frame{
				{settings}, {headers(3, false)}, {rst(3)},
			},
			want: []int{1, 2},
		},
		{
			name: "two streams interleaved end in one write",
			side: h2cork.Server,
			writes: [][]frame{
				{settings}, {headers(1, false)}, {headers(3, false)}, {data(1, false, 2)}, {headers(1, true)}, {data(3, true, 2)},
			},
			want: []int{1, 4, 1},
		},
		{
			name: "a frame past the hold limit goes at once",
			side: h2cork.Server,
			writes: [][]frame{
				{settings}, {headers(1, false)}, {data(1, false, 16<<10)}, {headers(1, true)},
			},
			want: []int{1, 2, 1},
		},
		{
			name: "a frame header split over two writes",
			side: h2cork.Server,
			writes: [][]frame{
				{settings}, {headers(1, false), data(1, false, 4), headers(1, true)},
			},
			want: []int{1, 1}, // the second write is split below
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			c := h2cork.New(rec, tt.side, time.Hour) // no hold runs out here
			var writes [][]byte
			writes = append(writes, tt.raw...)
			for _, w := range tt.writes {
				writes = append(writes, encode(t, w...))
			}
			if tt.name == "a frame header split over two writes" {
				last := writes[len(writes)-1]
				writes = append(writes[:len(writes)-1], last[:4], last[4:])
				tt.want = []int{1, 2}
			}
			for _, w := range writes {
				if n, err := c.Write(w); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(w))
				}
			}
			// What went out, in order, is what was written.
			var got, sent []byte
			for _, w := range writes {
				sent = append(sent, w...)
			}
			for _, w := range rec.writes {
				got = append(got, w...)
			}
			if !bytes.Equal(got, sent) {
				t.Fatalf("the connection got %d bytes, want the %d written in order", len(got), len(sent))
			}
			// Each underlying write carries the writes of want.
			if len(rec.writes) != len(tt.want) {
				t.Fatalf("%d writes went out, want %d", len(rec.writes), len(tt.want))
			}
			i := 0
			for k, n := range tt.want {
				var b []byte
				for _, w := range writes[i : i+n] {
					b = append(b, w...)
				}
				i += n
				if !bytes.Equal(rec.writes[k], b) {
					t.Errorf("write %d carries %d bytes, want the %d of writes %d..%d", k, len(rec.writes[k]), len(b), i-n, i-1)
				}
			}
		})
	}
}

// TestNotHTTP2 passes an HTTP/1.1 server's writes through as they are, and
// a client connection that does not start with the preface.
func TestNotHTTP2(t *testing.T) {
	for _, side := range []h2cork.Side{h2cork.Server, h2cork.Client} {
		rec := newRecorder()
		c := h2cork.New(rec, side, time.Hour)
		for _, w := range []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok", "\x00\x00\x04\x01\x04\x00\x00\x00\x01abcd"} {
			if _, err := c.Write([]byte(w)); err != nil {
				t.Fatal(err)
			}
		}
		if n := rec.count(); n != 3 {
			t.Errorf("side %d: %d writes went out, want the 3 made", side, n)
		}
	}
}

// TestHoldRunsOut sends a stream's first frames after the hold and passes
// that stream's later frames at once: a streaming call waits once.
func TestHoldRunsOut(t *testing.T) {
	rec := newRecorder()
	c := h2cork.New(rec, h2cork.Server, 5*time.Millisecond)
	start := time.Now()
	for _, w := range [][]frame{{settings}, {headers(1, false)}, {data(1, false, 5)}} {
		if _, err := c.Write(encode(t, w...)); err != nil {
			t.Fatal(err)
		}
	}
	<-rec.wrote // the settings
	select {
	case <-rec.wrote:
		t.Logf("the hold ran out after %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatalf("the held frames did not go in 10s (hold 5ms)")
	}
	if n := rec.count(); n != 2 {
		t.Fatalf("%d writes went out, want 2 (settings, then the held frames)", n)
	}
	// Stream 1 is streaming now: its next message goes at once; a new
	// stream is held again.
	c.Write(encode(t, data(1, false, 5)))
	if n := rec.count(); n != 3 {
		t.Errorf("a streaming stream's message was held: %d writes, want 3", n)
	}
	c.Write(encode(t, headers(3, false)))
	if n := rec.count(); n != 3 {
		t.Errorf("a new stream's headers went at once: %d writes, want 3", n)
	}
	c.Write(encode(t, data(3, true, 1)))
	if n := rec.count(); n != 4 {
		t.Errorf("%d writes, want 4 (stream 3's headers and end together)", n)
	}
}

// TestCloseSendsHeld: what is held when the connection closes goes first.
func TestCloseSendsHeld(t *testing.T) {
	rec := newRecorder()
	c := h2cork.New(rec, h2cork.Server, time.Hour)
	c.Write(encode(t, settings))
	c.Write(encode(t, headers(1, false)))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(); n != 2 {
		t.Errorf("%d writes went out, want 2 (settings; the held headers on close)", n)
	}
}
