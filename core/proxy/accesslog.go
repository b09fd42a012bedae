package proxy

import (
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// An access-log line is words, then key=value fields, separated by single
// spaces:
//
//	access inbound caller=spiffe://weft.local/ns/default/svc/web dest=api method=GET path=/hello status=200 dur=1.2ms
//
// A value is written bare when it is printable ASCII without a space or
// a double quote, else as a double-quoted Go string literal
// (strconv.QuoteToASCII): a path, a reason, anything the client chose can
// add neither a line, nor a NUL, nor a field. parseAccessLine reads a
// line back.
type accessLine struct{ b []byte }

var accessLines = sync.Pool{New: func() any { return &accessLine{b: make([]byte, 0, 256)} }}

// newAccessLine starts a line with its words ("access", "inbound", ...),
// which are ours, never the client's.
func newAccessLine(words ...string) *accessLine {
	l := accessLines.Get().(*accessLine)
	l.b = l.b[:0]
	for i, w := range words {
		if i > 0 {
			l.b = append(l.b, ' ')
		}
		l.b = append(l.b, w...)
	}
	return l
}

// str adds key=value; key is ours (a constant), value anything.
func (l *accessLine) str(key, value string) *accessLine {
	l.b = append(l.b, ' ')
	l.b = append(l.b, key...)
	l.b = append(l.b, '=')
	l.b = appendLogValue(l.b, value)
	return l
}

func (l *accessLine) int(key string, v int64) *accessLine {
	l.b = append(l.b, ' ')
	l.b = append(l.b, key...)
	l.b = append(l.b, '=')
	l.b = strconv.AppendInt(l.b, v, 10)
	return l
}

// grpcStatus adds grpc_status for a gRPC response, nothing otherwise.
func (l *accessLine) grpcStatus(w *statusWriter) *accessLine {
	if s := w.grpcStatus(); s != "" {
		return l.str("grpc_status", s)
	}
	return l
}

func (l *accessLine) dur(key string, d time.Duration) *accessLine {
	return l.str(key, d.Round(time.Microsecond).String())
}

// String is the line without a newline.
func (l *accessLine) String() string { return string(l.b) }

// send writes the line to the proxy's access log and recycles it.
func (l *accessLine) send(p *Proxy) {
	p.access.write(l.b)
	if cap(l.b) <= 4<<10 {
		accessLines.Put(l)
	}
}

// appendLogValue appends v, bare or quoted.
func appendLogValue(b []byte, v string) []byte {
	if bareLogValue(v) {
		return append(b, v...)
	}
	return strconv.AppendQuoteToASCII(b, v)
}

func bareLogValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' {
			return false
		}
	}
	return true
}

// parseAccessLine splits a line written by accessLine into its leading
// words and its fields, in order. ok is false when the line is not one
// accessLine could have written.
func parseAccessLine(line string) (words []string, fields [][2]string, ok bool) {
	for line != "" {
		end := strings.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		var rest string
		eq := strings.IndexByte(line[:end], '=')
		switch {
		case eq < 0: // a word
			if len(fields) > 0 || !bareLogValue(line[:end]) {
				return nil, nil, false
			}
			words, rest = append(words, line[:end]), line[end:]
		case eq == 0:
			return nil, nil, false
		case strings.HasPrefix(line[eq+1:], `"`):
			q, err := strconv.QuotedPrefix(line[eq+1:])
			if err != nil {
				return nil, nil, false
			}
			v, err := strconv.Unquote(q)
			if err != nil {
				return nil, nil, false
			}
			fields, rest = append(fields, [2]string{line[:eq], v}), line[eq+1+len(q):]
		default:
			v := line[eq+1 : end]
			if !bareLogValue(v) {
				return nil, nil, false
			}
			fields, rest = append(fields, [2]string{line[:eq], v}), line[end:]
		}
		if rest == "" {
			break
		}
		if rest[0] != ' ' || len(rest) == 1 {
			return nil, nil, false // no space after a quoted value, or a trailing one
		}
		line = rest[1:]
	}
	return words, fields, len(words)+len(fields) > 0
}

// accessLog writes access lines to Options.Log, each after the local date
// and time to the microsecond ("2006/01/02 15:04:05.000000 "), one Write
// per line. Access lines are data, not events: they do not go through the
// event logger (Options.Logger).
type accessLog struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (a *accessLog) write(line []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf = time.Now().AppendFormat(a.buf[:0], "2006/01/02 15:04:05.000000 ")
	a.buf = append(a.buf, line...)
	a.buf = append(a.buf, '\n')
	a.w.Write(a.buf)
	if cap(a.buf) > 16<<10 {
		a.buf = nil
	}
}
