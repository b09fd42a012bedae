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
	timer *time.Timer // armed while the buffer holds lines
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
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.buf.Len() >= logBufMax {
		l.flushLocked()
		return len(p), nil
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(l.every, l.flush)
	}
	return len(p), nil
}

func (l *logWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *logWriter) flushLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if l.buf.Len() > 0 {
		l.w.Write(l.buf.Bytes()) // nowhere to report a failed log write
		l.buf.Reset()
	}
}

// Close writes what is buffered.
func (l *logWriter) Close() error {
	l.flush()
	return nil
}
