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

// Write takes one entry: the log package writes each with one call,
// ending in a newline. A control byte inside it (a line break, a carriage
// return, a NUL) is written escaped, as \xHH, so no entry can add a line
// of its own to the log, whatever request input it carries.
func (l *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	if l.every <= 0 {
		_, err := l.w.Write(oneLine(p))
		return n, err
	}
	l.mu.Lock()
	l.buf.Write(oneLine(p))
	full := l.buf.Len() >= logBufMax
	if !full && l.timer == nil {
		l.timer = time.AfterFunc(l.every, l.flush)
	}
	l.mu.Unlock()
	if full {
		l.flush()
	}
	return n, nil
}

// oneLine returns entry as one line: its control bytes but a final
// newline and tabs escaped, and a newline at its end. It returns entry
// itself when there is nothing to change.
func oneLine(entry []byte) []byte {
	if len(entry) == 0 {
		return entry
	}
	body := bytes.TrimSuffix(entry, []byte("\n"))
	clean := len(body) < len(entry)
	for _, c := range body {
		if isControl(c) {
			clean = false
			break
		}
	}
	if clean {
		return entry
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(entry)+16)
	for _, c := range body {
		if isControl(c) {
			out = append(out, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		out = append(out, c)
	}
	return append(out, '\n')
}

func isControl(c byte) bool { return (c < 0x20 && c != '\t') || c == 0x7f }

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
