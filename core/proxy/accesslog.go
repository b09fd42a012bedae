package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// AccessLogFormat is how access-log lines are written (Options).
type AccessLogFormat int

const (
	// AccessLogText is the default: words, then key=value fields.
	AccessLogText AccessLogFormat = iota
	// AccessLogJSON is one JSON object a line, with the keys of the text
	// format.
	AccessLogJSON
)

// ParseAccessLogFormat reads --access-log-format: text or json.
func ParseAccessLogFormat(s string) (AccessLogFormat, error) {
	switch strings.ToLower(s) {
	case "text":
		return AccessLogText, nil
	case "json":
		return AccessLogJSON, nil
	}
	return 0, &AccessLogFormatError{Got: s}
}

// AccessLogFormatError is a bad --access-log-format value.
type AccessLogFormatError struct{ Got string }

func (e *AccessLogFormatError) Error() string {
	return "--access-log-format: want text or json, got " + strconv.Quote(e.Got)
}

// An access-log line in the text format is words, then key=value fields,
// separated by single spaces:
//
//	access inbound caller=spiffe://weft.local/ns/default/svc/web dest=api method=GET path=/hello status=200 dur=1.2ms
//
// A value is written bare when it is printable ASCII without a space or
// a double quote, else as a double-quoted Go string literal
// (strconv.QuoteToASCII): a path, a reason, anything the client chose can
// add neither a line, nor a NUL, nor a field. parseAccessLine reads a
// line back.
//
// In the JSON format the same line is one object, in the shape of the
// event log's JSON records (time, level, msg), the words becoming fields:
//
//	{"time":"2025-01-02T15:04:05.000001Z","level":"INFO","msg":"access","direction":"inbound","caller":"spiffe://...","dest":"api",...,"status":200,"dur_ms":1.2}
//
// A number is a JSON number; a duration "dur" becomes "dur_ms", in
// milliseconds. Strings are escaped to printable ASCII (\uXXXX beyond it),
// a byte that is not UTF-8 becoming U+FFFD, so any input makes one valid
// JSON line.
type accessLine struct {
	b    []byte
	json bool
}

var accessLines = sync.Pool{New: func() any { return &accessLine{b: make([]byte, 0, 256)} }}

// jsonWordKeys name the words of a line in the JSON format.
var jsonWordKeys = [...]string{"msg", "direction", "outcome"}

// newAccessLine starts a line with its words ("access", "inbound", ...),
// which are ours, never the client's: at most three.
func newAccessLine(f AccessLogFormat, words ...string) *accessLine {
	l := accessLines.Get().(*accessLine)
	l.b = l.b[:0]
	l.json = f == AccessLogJSON
	for i, w := range words {
		if l.json {
			l.str(jsonWordKeys[i], w)
			continue
		}
		if i > 0 {
			l.b = append(l.b, ' ')
		}
		l.b = append(l.b, w...)
	}
	return l
}

// accessLine starts a line in the proxy's access-log format.
func (p *Proxy) accessLine(words ...string) *accessLine {
	return newAccessLine(p.opts.AccessLogFormat, words...)
}

// key starts a field.
func (l *accessLine) key(k string) {
	if l.json {
		if len(l.b) > 0 {
			l.b = append(l.b, ',')
		}
		l.b = append(l.b, '"')
		l.b = append(l.b, k...)
		l.b = append(l.b, '"', ':')
		return
	}
	l.b = append(l.b, ' ')
	l.b = append(l.b, k...)
	l.b = append(l.b, '=')
}

// str adds key=value; key is ours (a constant), value anything.
func (l *accessLine) str(key, value string) *accessLine {
	l.key(key)
	if l.json {
		l.b = appendJSONString(l.b, value)
		return l
	}
	l.b = appendLogValue(l.b, value)
	return l
}

// strIf adds key=value when value is not empty.
func (l *accessLine) strIf(key, value string) *accessLine {
	if value == "" {
		return l
	}
	return l.str(key, value)
}

func (l *accessLine) int(key string, v int64) *accessLine {
	l.key(key)
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

// dur adds a duration: key=1.5ms in text, "key_ms":1.5 in JSON.
func (l *accessLine) dur(key string, d time.Duration) *accessLine {
	if !l.json {
		return l.str(key, d.Round(time.Microsecond).String())
	}
	l.b = append(l.b, ',', '"')
	l.b = append(l.b, key...)
	l.b = append(l.b, "_ms\":"...)
	l.b = strconv.AppendFloat(l.b, float64(d.Round(time.Microsecond))/float64(time.Millisecond), 'f', -1, 64)
	return l
}

// request adds what every HTTP line carries after its own fields: the
// authority, the request and trace IDs, and the bytes read of the
// request's body and written of the response's (w may be nil: none
// counted).
func (l *accessLine) request(r *http.Request, w *statusWriter) *accessLine {
	l.str("authority", r.Host)
	l.strIf("request_id", requestID(r.Header))
	l.strIf("trace_id", traceID(r.Header))
	if w != nil {
		l.int("bytes_in", w.body.n).int("bytes_out", w.out)
	}
	return l
}

// String is the line without a newline (in JSON, without the object's
// braces and its time and level).
func (l *accessLine) String() string { return string(l.b) }

// send writes the line to the proxy's access log and recycles it.
func (l *accessLine) send(p *Proxy) {
	p.access.write(l.b, l.json)
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

// appendJSONString appends s as a JSON string of printable ASCII: '"',
// '\\' and control bytes escaped, every other rune beyond ASCII as \uXXXX
// (a surrogate pair past U+FFFF), and a byte that is not UTF-8 as \ufffd,
// as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	u := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&15], hex[r>>8&15], hex[r>>4&15], hex[r&15])
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			if c == '"' || c == '\\' {
				b = append(b, '\\')
			}
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = u(b, rune(c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r > 0xffff {
			r -= 0x10000
			b = u(u(b, 0xd800+(r>>10)), 0xdc00+(r&0x3ff))
			continue
		}
		b = u(b, r) // utf8.RuneError for a bad byte
	}
	return append(b, '"')
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

// accessLog writes access lines to Options.Log, one Write per line: a
// text line after the local date and time to the microsecond
// ("2006/01/02 15:04:05.000000 "), a JSON one as an object that starts
// with the UTC time (RFC 3339, to the microsecond) and level INFO. Access
// lines are data, not events: they do not go through the event logger
// (Options.Logger).
type accessLog struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (a *accessLog) write(line []byte, json bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if json {
		a.buf = append(a.buf[:0], `{"time":"`...)
		a.buf = time.Now().UTC().AppendFormat(a.buf, "2006-01-02T15:04:05.000000Z07:00")
		a.buf = append(a.buf, `","level":"INFO",`...)
		a.buf = append(a.buf, line...)
		a.buf = append(a.buf, '}', '\n')
	} else {
		a.buf = time.Now().AppendFormat(a.buf[:0], "2006/01/02 15:04:05.000000 ")
		a.buf = append(a.buf, line...)
		a.buf = append(a.buf, '\n')
	}
	a.w.Write(a.buf)
	if cap(a.buf) > 16<<10 {
		a.buf = nil
	}
}
