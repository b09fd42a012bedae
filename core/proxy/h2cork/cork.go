package h2cork

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// Side says who writes the connection, which decides what its first bytes
// are.
type Side int

const (
	// Server: an HTTP/2 server (or an HTTP/1.1 one, passed through) writes
	// it; its first frame is SETTINGS.
	Server Side = iota
	// Client: an HTTP/2 client with prior knowledge writes it; it starts
	// with the connection preface, then SETTINGS.
	Client
)

const (
	// MaxHold is how long held bytes wait at most: a streaming call's first
	// frames wait this long on each leg that holds them.
	MaxHold = 500 * time.Microsecond
	// HoldLimit is the most bytes a hold keeps: one maximum-size frame
	// (16 KiB) and its header.
	HoldLimit = 16<<10 + 9
	// streamingCap bounds the set of streams marked streaming: a stream
	// that ends by a reset from the peer is never seen to end here.
	streamingCap = 4096
)

// HTTP/2 frame types and flags (RFC 9113, section 6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameContinuation = 0x9
	flagEndStream     = 0x1
)

var preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

type mode uint8

const (
	modeStart   mode = iota // nothing written yet
	modePreface             // client: inside the preface
	modeFrames              // reading frame headers
	modePass                // not HTTP/2: every write goes as it is
)

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// Conn is a net.Conn whose writes are held and coalesced as the package
// doc says. Reads, deadlines and addresses are the wrapped connection's.
type Conn struct {
	net.Conn
	side    Side
	maxHold time.Duration

	mu        sync.Mutex
	mode      mode
	skip      int     // client: preface bytes still to pass
	hdr       [9]byte // the frame header being read
	hdrN      int
	left      int       // payload bytes of the current frame not yet seen
	held      *[]byte   // nil: nothing held
	since     time.Time // when the hold began
	timer     *time.Timer
	heldIDs   []uint32            // streams with frames in the hold and no end yet
	streaming map[uint32]struct{} // streams that outlived a hold
	err       error               // a failed write of held bytes
}

// New wraps c, written by side, holding bytes at most maxHold (MaxHold
// when zero or less).
// The result has c's ConnectionState method when c has one.
func New(c net.Conn, side Side, maxHold time.Duration) net.Conn {
	if maxHold <= 0 {
		maxHold = MaxHold
	}
	cc := &Conn{Conn: c, side: side, maxHold: maxHold}
	if _, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tlsConn{cc}
	}
	return cc
}

// Write holds p or sends it with what is held, as the package doc says.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.mode == modePass {
		return c.Conn.Write(p)
	}
	hold := c.scan(p)
	if hold && c.heldLen()+len(p) <= HoldLimit {
		if c.held == nil {
			c.held = bufs.Get().(*[]byte)
			c.since = time.Now()
			if c.timer == nil {
				c.timer = time.AfterFunc(c.maxHold, c.expire)
			} else {
				c.timer.Reset(c.maxHold)
			}
		}
		*c.held = append(*c.held, p...)
		return len(p), nil
	}
	if c.held == nil {
		return c.Conn.Write(p)
	}
	*c.held = append(*c.held, p...)
	if err := c.sendHeld(); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Conn) heldLen() int {
	if c.held == nil {
		return 0
	}
	return len(*c.held)
}

// sendHeld writes the held bytes and ends the hold.
func (c *Conn) sendHeld() error {
	b := c.held
	c.held = nil
	c.heldIDs = c.heldIDs[:0]
	if c.timer != nil {
		c.timer.Stop()
	}
	_, err := c.Conn.Write(*b)
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		bufs.Put(b)
	}
	return err
}

// expire ends a hold that lasted maxHold: its streams are streaming.
func (c *Conn) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil || c.err != nil {
		return
	}
	if d := time.Since(c.since); d < c.maxHold { // a later hold than the timer's
		c.timer.Reset(c.maxHold - d)
		return
	}
	if c.streaming == nil || len(c.streaming) >= streamingCap {
		c.streaming = make(map[uint32]struct{})
	}
	for _, id := range c.heldIDs {
		c.streaming[id] = struct{}{}
	}
	if err := c.sendHeld(); err != nil {
		c.err = err
		c.Conn.Close() // the writer learns on its next write, the reader at once
	}
}

// scan reads the frame headers in p and reports whether p may be held.
func (c *Conn) scan(p []byte) (hold bool) {
	send := false
	for len(p) > 0 {
		switch c.mode {
		case modeStart:
			c.mode = modePass
			if c.side == Client {
				c.mode, c.skip = modePreface, len(preface)
			} else if len(p) >= 9 && p[3] == 0x4 && binary.BigEndian.Uint32(p[5:9]) == 0 {
				c.mode = modeFrames // SETTINGS on stream 0: HTTP/2
			}
			if c.mode == modePass {
				return false
			}
		case modePreface:
			n := min(len(p), c.skip)
			if !bytes.Equal(p[:n], preface[len(preface)-c.skip:][:n]) {
				c.mode = modePass
				return false
			}
			p, c.skip = p[n:], c.skip-n
			send = true // the preface and the settings go at once
			if c.skip == 0 {
				c.mode = modeFrames
			}
		case modeFrames:
			if c.left > 0 {
				n := min(len(p), c.left)
				p, c.left = p[n:], c.left-n
				continue
			}
			n := copy(c.hdr[c.hdrN:], p)
			p, c.hdrN = p[n:], c.hdrN+n
			if c.hdrN < len(c.hdr) {
				continue
			}
			c.hdrN = 0
			c.left = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
			typ, flags := c.hdr[3], c.hdr[4]
			id := binary.BigEndian.Uint32(c.hdr[5:9]) & (1<<31 - 1)
			switch {
			case typ == frameContinuation: // the rest of a header block
			case (typ == frameData || typ == frameHeaders) && flags&flagEndStream == 0:
				if _, ok := c.streaming[id]; ok {
					send = true
				} else {
					hold = true
					c.noteHeld(id)
				}
			case typ == frameData || typ == frameHeaders || typ == frameRSTStream:
				delete(c.streaming, id)
				send = true
			default: // connection-level frames go at once
				send = true
			}
		}
	}
	// A frame header cut in two: its rest follows at once.
	hold = hold || c.mode == modeFrames && c.hdrN > 0
	return !send && (hold || c.held != nil)
}

func (c *Conn) noteHeld(id uint32) {
	for _, h := range c.heldIDs {
		if h == id {
			return
		}
	}
	c.heldIDs = append(c.heldIDs, id)
}

// tlsConn is a Conn over a TLS connection: it tells its TLS state (an
// HTTP/2 client reads it for its responses). A Conn over a plain one must
// not have the method: net/http's server takes a connection that has it
// for TLS and would not look for the HTTP/2 cleartext preface.
type tlsConn struct{ *Conn }

func (c tlsConn) ConnectionState() tls.ConnectionState {
	return c.Conn.Conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState()
}

// Close sends what is held, then closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.held != nil && c.err == nil {
		c.sendHeld()
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
