package main

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// logWriter batches the sidecar's log (one access-log line per request)
// into one write per interval, as Envoy's access-log flush interval does:
// a write per line cost the sidecar a system call per request. A line is
// out at most one interval after it was logged; Close writes the rest.
type logWriter struct {
	w     io.Writer
	every time.Duration

	mu    sync.Mutex
	buf   bytes.Buffer
	spare bytes.Buffer // the other buffer: written out while lines go to buf
	timer *time.Timer  // armed while the buffer holds lines

	// wmu orders the writes of w. A write to a file or pipe can block;
	// it does so outside mu, so requests logging meanwhile do not wait.
	wmu sync.Mutex
}

// logBufMax is how much the buffer holds before it is written at once.
const logBufMax = 64 << 10

func newLogWriter(w io.Writer, every time.Duration) *logWriter {
	return &logWriter{w: w, every: every}
}

func (l *logWriter) Write(p []byte) (int, error) {
	if l.every <= 0 {
		return l.w.Write(p)
	}
	l.mu.Lock()
	l.buf.Write(p)
	full := l.buf.Len() >= logBufMax
	if !full && l.timer == nil {
		l.timer = time.AfterFunc(l.every, l.flush)
	}
	l.mu.Unlock()
	if full {
		l.flush()
	}
	return len(p), nil
}

// flush writes what is buffered: it swaps the two buffers under mu and
// writes the full one under wmu alone.
func (l *logWriter) flush() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.buf, l.spare = l.spare, l.buf
	l.mu.Unlock()
	if l.spare.Len() > 0 {
		l.w.Write(l.spare.Bytes()) // nowhere to report a failed log write
		l.spare.Reset()
	}
}

// Close writes what is buffered.
func (l *logWriter) Close() error {
	l.flush()
	return nil
}
