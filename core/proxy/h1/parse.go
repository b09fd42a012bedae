package h1

import (
	"bytes"
	"strconv"
	"unsafe"

	"github.com/weftmesh/weft/core/proxy/canon"
)

// Field is one header field: its name and value are slices of the buffer
// the head was read into, valid until the next head is read.
type Field struct {
	Name, Value []byte
}

// Limits bound what a head may hold (core/protect's MaxHeaderBytes and
// MaxHeaderCount). Both are checked before a byte past them is parsed.
type Limits struct {
	MaxHeaderBytes int // the whole head, request line and final CRLF included
	MaxHeaderCount int // header fields
	// MaxBodyBytes bounds a request body (core/protect's
	// MaxRequestBodyBytes); 0: no cap.
	MaxBodyBytes int64
}

// framing is how a message's body is delimited.
type framing uint8

const (
	bodyNone    framing = iota // no body
	bodyLength                 // Content-Length bytes
	bodyChunked                // chunked, then trailers
	bodyClose                  // until the connection closes (responses only)
)

// Request is a parsed request head. Every slice points into the buffer
// it was parsed from; Parse reuses the Fields and Drop slices.
type Request struct {
	Method  []byte
	Target  []byte // as the client sent it
	Path    string // escaped canonical path (canon.Target): what goes on
	Query   string // without "?", as the client wrote it; HasQuery tells "" from none
	HTTP10  bool   // HTTP/1.0 (else HTTP/1.1)
	Fields  []Field
	Host    []byte // the authority: of an absolute-form target, else the Host field
	AbsHost bool   // Host came from an absolute-form target

	HasQuery      bool
	framing       framing
	ContentLength int64
	Close         bool // the client asked to close after this exchange
	Expect100     bool
	Upgrade       bool     // Connection: upgrade with an Upgrade field
	drop          [][]byte // names listed in Connection (besides close, keep-alive, upgrade)
}

// Chunked reports whether the request's body is chunked.
func (r *Request) Chunked() bool { return r.framing == bodyChunked }

// Response is a parsed response head, in the same buffer terms.
type Response struct {
	Status        int
	Reason        []byte
	Fields        []Field
	framing       framing
	ContentLength int64
	Close         bool
	drop          [][]byte
}

// Error is a message the engine refuses: Status is what the client is
// answered (400, 417, 431, 501, 505), Msg says what is wrong and what to
// send instead.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// errIncomplete: the buffer does not hold the whole head yet.
var errIncomplete = &Error{Status: 400, Msg: "the head is incomplete"}

func refuse(status int, msg string) *Error { return &Error{Status: status, Msg: msg} }

// b2s views b as a string without copying: b is not written while the
// string is in use (a head's bytes are not touched until the next head).
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// headEnd returns the length of the head at the start of buf (through
// its blank line), 0 if buf does not hold a whole head yet, or an error
// when the head is longer than max, or has a bare LF or CR (a line that
// readers split differently is a smuggling vector: CRLF only).
func headEnd(buf []byte, max int) (int, *Error) {
	for i := 0; i < len(buf); i++ {
		if i >= max {
			return 0, refuse(431, "the head is larger than the "+strconv.Itoa(max)+" bytes this listener takes; send fewer or shorter header fields")
		}
		switch buf[i] {
		case '\n':
			if i == 0 || buf[i-1] != '\r' {
				return 0, refuse(400, "the head has a line that ends with a bare LF; end every line with CRLF")
			}
			if i >= 3 && buf[i-2] == '\n' && buf[i-3] == '\r' {
				return i + 1, nil
			}
		case '\r':
			if i+1 < len(buf) && buf[i+1] != '\n' {
				return 0, refuse(400, "the head has a bare CR; end every line with CRLF")
			}
		}
	}
	return 0, nil
}

// ParseRequest parses the request head at the start of buf, applies the
// canonicalization and refusals of core/proxy/canon to its target, and
// returns the head's length. It returns 0 and no error while buf does
// not hold a whole head yet.
func ParseRequest(buf []byte, lim Limits, r *Request) (int, *Error) {
	n, err := headEnd(buf, lim.MaxHeaderBytes)
	if n == 0 || err != nil {
		return 0, err
	}
	head := buf[:n-2] // each line keeps its CRLF
	line, rest := cutLine(head)
	*r = Request{Fields: r.Fields[:0], drop: r.drop[:0]}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return 0, refuse(400, "the request line is not METHOD SP TARGET SP HTTP/1.1")
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return 0, refuse(400, "the request line is not METHOD SP TARGET SP HTTP/1.1")
	}
	r.Method, r.Target = line[:sp1], line[sp1+1:sp1+1+sp2]
	switch string(line[sp1+sp2+2:]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.HTTP10, r.Close = true, true
	default:
		if v := line[sp1+sp2+2:]; bytes.HasPrefix(v, []byte("HTTP/")) && len(v) == 8 && v[6] == '.' {
			return 0, refuse(505, "the HTTP version "+canon.QuoteForBody(string(v))+" is not served; send HTTP/1.1")
		}
		return 0, refuse(400, "the request line is not METHOD SP TARGET SP HTTP/1.1")
	}
	for _, c := range r.Target {
		if c <= ' ' || c == 0x7f {
			return 0, refuse(400, "the request target has a control character or a space; percent-encode it")
		}
		if c == '#' {
			return 0, refuse(400, "the request target has a fragment (#); a request carries none: leave it out or write # as %23")
		}
	}
	path, query, bad := canon.Target(b2s(r.Method), b2s(r.Target))
	if bad != nil {
		return 0, refuse(400, bad.Error())
	}
	r.Path, r.Query = path, query
	if q := bytes.IndexByte(r.Target, '?'); q >= 0 {
		r.HasQuery = true
	}
	if r.Target[0] != '/' && string(r.Target) != "*" {
		// Absolute form: the authority stands for Host.
		i := bytes.Index(r.Target, []byte("://"))
		if scheme := r.Target[:i]; !fold(scheme, "http") && !fold(scheme, "https") {
			return 0, refuse(400, "the request target's scheme is not http or https; send a path that begins with /")
		}
		a := r.Target[i+3:]
		if j := bytes.IndexAny(a, "/?#"); j >= 0 {
			a = a[:j]
		}
		if !validHost(a) {
			return 0, refuse(400, "the request target's authority "+canon.QuoteForBody(string(a))+" is not host[:port]; send a path that begins with /")
		}
		r.Host, r.AbsHost = a, true
	}
	var cl []byte
	hosts, te := 0, 0
	for len(rest) > 0 {
		var f Field
		var e *Error
		line, rest = cutLine(rest)
		if f, e = parseField(line); e != nil {
			return 0, e
		}
		// Counted as core/protect counts them: Host aside.
		if len(r.Fields)-hosts == lim.MaxHeaderCount && !fold(f.Name, "Host") {
			return 0, refuse(431, "the request has more than the "+strconv.Itoa(lim.MaxHeaderCount)+" header fields this listener takes; send fewer")
		}
		r.Fields = append(r.Fields, f)
		switch {
		case fold(f.Name, "Host"):
			hosts++
			if !validHost(f.Value) && (len(f.Value) > 0 || !r.HTTP10) {
				return 0, refuse(400, "the Host "+canon.QuoteForBody(string(f.Value))+" is not host[:port]; send the name or address of the service")
			}
			if !r.AbsHost {
				r.Host = f.Value
			}
		case fold(f.Name, "Content-Length"):
			if cl != nil && !bytes.Equal(cl, f.Value) {
				return 0, refuse(400, "the request has two different Content-Length fields; send one")
			}
			cl = f.Value
		case fold(f.Name, "Transfer-Encoding"):
			te++
			if te > 1 || !fold(f.Value, "chunked") {
				return 0, refuse(501, "the request's Transfer-Encoding "+canon.QuoteForBody(string(f.Value))+" is not served; send one Transfer-Encoding: chunked, or Content-Length")
			}
		case fold(f.Name, "Connection"):
			r.drop = connectionTokens(f.Value, r.drop, &r.Close, &r.Upgrade)
		case fold(f.Name, "Expect"):
			if !fold(f.Value, "100-continue") {
				return 0, refuse(417, "the expectation "+canon.QuoteForBody(string(f.Value))+" is not served; send Expect: 100-continue or none")
			}
			r.Expect100 = true
		}
	}
	if r.HTTP10 {
		r.Close = !keepAlive10(r.drop)
		r.Expect100 = false
	}
	if hosts > 1 {
		return 0, refuse(400, "the request has more than one Host field; send one")
	}
	if hosts == 0 && !r.HTTP10 {
		return 0, refuse(400, "the HTTP/1.1 request has no Host field; send one")
	}
	if r.Upgrade && !r.hasField("Upgrade") {
		r.Upgrade = false
	}
	switch {
	case te > 0 && cl != nil:
		return 0, refuse(400, "the request has both Transfer-Encoding and Content-Length; send one")
	case te > 0:
		if r.HTTP10 {
			return 0, refuse(400, "an HTTP/1.0 request cannot be chunked; send Content-Length")
		}
		r.framing = bodyChunked
	case cl != nil:
		v, ok := parseLength(cl)
		if !ok {
			return 0, refuse(400, "the Content-Length "+canon.QuoteForBody(string(cl))+" is not a number of bytes; send decimal digits")
		}
		if lim.MaxBodyBytes > 0 && v > lim.MaxBodyBytes {
			return 0, refuse(413, "the request body of "+strconv.FormatInt(v, 10)+" bytes is larger than the "+strconv.FormatInt(lim.MaxBodyBytes, 10)+" this listener takes")
		}
		r.ContentLength = v
		if v > 0 {
			r.framing = bodyLength
		}
	}
	return n, nil
}

// ParseResponse parses the response head at the start of buf for a
// request whose method was HEAD or not, and returns its length (0 while
// incomplete).
func ParseResponse(buf []byte, lim Limits, head bool, p *Response) (int, *Error) {
	n, err := headEnd(buf, lim.MaxHeaderBytes)
	if n == 0 || err != nil {
		return 0, err
	}
	line, rest := cutLine(buf[:n-2])
	*p = Response{Fields: p.Fields[:0], drop: p.drop[:0]}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '1' && line[7] != '0') || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, refuse(502, "the upstream's status line is not HTTP/1.1 NNN reason")
	}
	http10 := line[7] == '0'
	st := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, refuse(502, "the upstream's status code is not three digits")
		}
		st = st*10 + int(c-'0')
	}
	if st < 100 {
		return 0, refuse(502, "the upstream's status code is below 100")
	}
	p.Status = st
	if len(line) > 13 {
		p.Reason = line[13:]
	}
	var cl []byte
	te := false
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		f, e := parseField(line)
		if e != nil {
			e.Status = 502
			return 0, e
		}
		if len(p.Fields) == lim.MaxHeaderCount {
			return 0, refuse(502, "the upstream's response has too many header fields")
		}
		p.Fields = append(p.Fields, f)
		switch {
		case fold(f.Name, "Content-Length"):
			if cl != nil && !bytes.Equal(cl, f.Value) {
				return 0, refuse(502, "the upstream's response has two different Content-Length fields")
			}
			cl = f.Value
		case fold(f.Name, "Transfer-Encoding"):
			if te || !fold(f.Value, "chunked") {
				return 0, refuse(502, "the upstream's response has a Transfer-Encoding other than chunked")
			}
			te = true
		case fold(f.Name, "Connection"):
			var up bool
			p.drop = connectionTokens(f.Value, p.drop, &p.Close, &up)
		}
	}
	if http10 && keepAlive10(p.drop) == false {
		p.Close = true
	}
	if cl != nil {
		v, ok := parseLength(cl)
		if !ok {
			return 0, refuse(502, "the upstream's Content-Length is not a number")
		}
		p.ContentLength = v
	}
	switch {
	case head || st < 200 || st == 204 || st == 304:
		p.framing = bodyNone
	case te:
		p.framing = bodyChunked
	case cl != nil:
		p.framing = bodyLength
	default:
		p.framing = bodyClose
		p.Close = true
	}
	return n, nil
}

// validHost reports whether b is host[:port]: a name or IPv4 address of
// RFC 3986 unreserved and sub-delims characters, or an IP literal in
// brackets, then digits after a colon. Percent-encodings and userinfo
// ("@") are refused: readers disagree on them.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	host, port := b, []byte(nil)
	if b[0] == '[' {
		i := bytes.IndexByte(b, ']')
		if i < 0 {
			return false
		}
		for _, c := range b[1:i] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == ':' || c == '.') {
				return false
			}
		}
		host, port = nil, b[i+1:]
		if len(port) > 0 && port[0] != ':' {
			return false
		}
	} else if i := bytes.LastIndexByte(b, ':'); i >= 0 {
		host, port = b[:i], b[i:]
	}
	if len(port) > 0 {
		for _, c := range port[1:] {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	for _, c := range host {
		if hostTable[c] == 0 {
			return false
		}
	}
	return true
}

var hostTable = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || bytes.IndexByte([]byte("-._~!$&'()*+,;="), b) >= 0 {
			t[c] = 1
		}
	}
	return t
}()

func (r *Request) hasField(name string) bool {
	for _, f := range r.Fields {
		if fold(f.Name, name) {
			return true
		}
	}
	return false
}

// cutLine splits the first CRLF-terminated line off b.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\r')
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+2:]
}

// parseField parses "name: value" (RFC 9112 5): a token name, the colon
// at once, optional whitespace around a value of visible characters,
// spaces, tabs and obs-text. A line folded onto the one before, and a
// space before the colon, are refused (smuggling vectors).
func parseField(line []byte) (Field, *Error) {
	c := bytes.IndexByte(line, ':')
	if c <= 0 {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return Field{}, refuse(400, "the head has a folded header line (obs-fold); send each field on one line")
		}
		return Field{}, refuse(400, "the head has a line that is not a header field (name: value)")
	}
	name := line[:c]
	for _, ch := range name {
		if tokenTable[ch] == 0 {
			return Field{}, refuse(400, "the header name "+canon.QuoteForBody(string(name))+" is not an HTTP token; write names without spaces or separators")
		}
	}
	v := line[c+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for _, ch := range v {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return Field{}, refuse(400, "the value of "+canon.QuoteForBody(string(name))+" has a control character; send visible characters only")
		}
	}
	return Field{Name: name, Value: v}, nil
}

// connectionTokens reads a Connection field's comma-separated tokens:
// close and upgrade set their flags, every other name is appended to
// drop (the hop-by-hop fields this hop removes).
func connectionTokens(v []byte, drop [][]byte, close, upgrade *bool) [][]byte {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		t = bytes.Trim(t, " \t")
		switch {
		case len(t) == 0:
		case fold(t, "close"):
			*close = true
		case fold(t, "upgrade"):
			*upgrade = true
		default:
			drop = append(drop, t)
		}
	}
	return drop
}

func keepAlive10(drop [][]byte) bool {
	for _, t := range drop {
		if fold(t, "keep-alive") {
			return true
		}
	}
	return false
}

// parseLength reads a Content-Length: decimal digits only (no sign, no
// spaces, no list), at most 18 of them.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// fold reports whether b equals the ASCII string s, ignoring case.
func fold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

var tokenTable = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0 {
			t[c] = 1
		}
	}
	return t
}()
