package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAccessLine(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"plain", "/hello", `access inbound caller=spiffe://weft.test/ns/default/svc/web path=/hello status=200 dur=1.5ms`},
		{"newline", "/x\naccess inbound caller=forged", `access inbound caller=spiffe://weft.test/ns/default/svc/web path="/x\naccess inbound caller=forged" status=200 dur=1.5ms`},
		{"NUL", "/x\x00y", `access inbound caller=spiffe://weft.test/ns/default/svc/web path="/x\x00y" status=200 dur=1.5ms`},
		{"forged field", "/x status=200", `access inbound caller=spiffe://weft.test/ns/default/svc/web path="/x status=200" status=200 dur=1.5ms`},
		{"quote", `/x"y`, `access inbound caller=spiffe://weft.test/ns/default/svc/web path="/x\"y" status=200 dur=1.5ms`},
		{"empty", "", `access inbound caller=spiffe://weft.test/ns/default/svc/web path="" status=200 dur=1.5ms`},
		{"non-ASCII", "/é\xff", `access inbound caller=spiffe://weft.test/ns/default/svc/web path="/\u00e9\xff" status=200 dur=1.5ms`},
		{"equals", "/a=b", `access inbound caller=spiffe://weft.test/ns/default/svc/web path=/a=b status=200 dur=1.5ms`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newAccessLine(AccessLogText, "access", "inbound").str("caller", "spiffe://weft.test/ns/default/svc/web").
				str("path", tt.path).int("status", 200).dur("dur", 1500*time.Microsecond)
			if got := l.String(); got != tt.want {
				t.Errorf("line\n%s\nwant\n%s", got, tt.want)
			}
			words, fields, ok := parseAccessLine(l.String())
			if !ok || strings.Join(words, " ") != "access inbound" || len(fields) != 4 || fields[1] != [2]string{"path", tt.path} {
				t.Errorf("parsed back: %q %q %v", words, fields, ok)
			}
		})
	}
}

func TestParseAccessLineRejects(t *testing.T) {
	for _, line := range []string{"", " ", "a  b", "a b=c d", "a =x", `a b="c`, `a b="c"d`, "a b=c ", `a b="c" `, `a b=c"`} {
		if _, _, ok := parseAccessLine(line); ok {
			t.Errorf("parseAccessLine(%q) accepted a line accessLine cannot write", line)
		}
	}
}

// FuzzAccessLine: whatever the values, the line has no line break, no
// NUL and no other control byte, and parses back into the same words and
// fields.
func FuzzAccessLine(f *testing.F) {
	f.Add("spiffe://weft.local/ns/default/svc/web", "GET", "/hello", "weft: denied")
	f.Add("", "delete", "/x\naccess inbound caller=forged", "a\x00b")
	f.Add(`"`, "G ET", "/x status=200", "\xff\xfe")
	f.Add("x=y", "=", `"quoted"`, `\"`)
	f.Fuzz(func(t *testing.T, caller, method, path, reason string) {
		l := newAccessLine(AccessLogText, "access", "inbound", "DENIED").str("caller", caller).str("method", method).
			str("path", path).int("status", 403).str("reason", reason)
		line := l.String()
		for i := 0; i < len(line); i++ {
			if c := line[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("the line has byte %#x: %q", c, line)
			}
		}
		words, fields, ok := parseAccessLine(line)
		if !ok {
			t.Fatalf("the line does not parse: %q", line)
		}
		want := [][2]string{{"caller", caller}, {"method", method}, {"path", path}, {"status", "403"}, {"reason", reason}}
		if strings.Join(words, " ") != "access inbound DENIED" || len(fields) != len(want) {
			t.Fatalf("parsed %q %q from %q", words, fields, line)
		}
		for i := range want {
			if fields[i] != want[i] {
				t.Fatalf("field %d is %q, want %q (line %q)", i, fields[i], want[i], line)
			}
		}
	})
}

func TestAccessLineJSON(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"plain", "/hello", `"msg":"access","direction":"inbound","path":"/hello","status":200,"dur_ms":1.5`},
		{"newline", "/x\n{\"forged\":1}", `"msg":"access","direction":"inbound","path":"/x\n{\"forged\":1}","status":200,"dur_ms":1.5`},
		{"controls", "\x00\x1f\x7f\t\r", `"msg":"access","direction":"inbound","path":"\u0000\u001f\u007f\t\r","status":200,"dur_ms":1.5`},
		{"backslash", `/a\b`, `"msg":"access","direction":"inbound","path":"/a\\b","status":200,"dur_ms":1.5`},
		{"UTF-8", "/é€😀", `"msg":"access","direction":"inbound","path":"/\u00e9\u20ac\ud83d\ude00","status":200,"dur_ms":1.5`},
		{"invalid UTF-8", "/\xff\xc3", `"msg":"access","direction":"inbound","path":"/\ufffd\ufffd","status":200,"dur_ms":1.5`},
		{"line separator", "\u2028", `"msg":"access","direction":"inbound","path":"\u2028","status":200,"dur_ms":1.5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newAccessLine(AccessLogJSON, "access", "inbound").str("path", tt.path).int("status", 200).dur("dur", 1500*time.Microsecond)
			if got := l.String(); got != tt.want {
				t.Errorf("line\n%s\nwant\n%s", got, tt.want)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte("{"+l.String()+"}"), &m); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if want := string([]rune(tt.path)); m["path"] != want {
				t.Errorf("path decodes to %q, want %q", m["path"], want)
			}
		})
	}
}

func TestParseAccessLogFormat(t *testing.T) {
	for in, want := range map[string]AccessLogFormat{"text": AccessLogText, "json": AccessLogJSON, "JSON": AccessLogJSON} {
		if got, err := ParseAccessLogFormat(in); err != nil || got != want {
			t.Errorf("ParseAccessLogFormat(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "yaml", "logfmt", "json "} {
		if _, err := ParseAccessLogFormat(in); err == nil || !strings.Contains(err.Error(), "want text or json") {
			t.Errorf("ParseAccessLogFormat(%q): err %v", in, err)
		}
	}
}

// FuzzAccessLineJSON: whatever the values, the JSON line (as accessLog
// writes it) is one valid JSON object of printable ASCII, and decodes to
// the same fields, a byte that is not UTF-8 read as U+FFFD.
func FuzzAccessLineJSON(f *testing.F) {
	f.Add("spiffe://weft.local/ns/default/svc/web", "GET", "/hello", "weft: denied", "0b7c1a9e")
	f.Add("", "delete", "/x\n{\"msg\":\"forged\"}", "a\x00b", "\"")
	f.Add(`"`, "G ET", "\\", "\xff\xfe", "\u2028\U0001F600")
	f.Fuzz(func(t *testing.T, caller, method, path, reason, requestID string) {
		r := &http.Request{Host: method, Header: http.Header{headerRequestID: {requestID}}}
		l := newAccessLine(AccessLogJSON, "access", "inbound", "DENIED").str("caller", caller).str("method", method).
			str("path", path).int("status", 403).str("reason", reason).request(r, nil)
		a := &accessLog{w: &lastWrite{}}
		a.write(l.b, true)
		line := a.w.(*lastWrite).b
		if len(line) == 0 || line[len(line)-1] != '\n' {
			t.Fatalf("no line: %q", line)
		}
		for _, c := range line[:len(line)-1] {
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("the line has byte %#x: %q", c, line)
			}
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		want := map[string]any{"msg": "access", "direction": "inbound", "outcome": "DENIED", "level": "INFO",
			"caller": caller, "method": method, "path": path, "status": 403.0, "reason": reason, "authority": method}
		if requestID != "" {
			want["request_id"] = requestID
		}
		for k, v := range want {
			if s, ok := v.(string); ok {
				v = string([]rune(s))
			}
			if m[k] != v {
				t.Fatalf("%s decodes to %q, want %q (line %q)", k, m[k], v, line)
			}
		}
	})
}

type lastWrite struct{ b []byte }

func (w *lastWrite) Write(p []byte) (int, error) { w.b = append(w.b[:0], p...); return len(p), nil }

// BenchmarkAccessLine: building and writing a line allocates nothing, in
// either format.
func BenchmarkAccessLine(b *testing.B) {
	r := &http.Request{Host: "api", Header: http.Header{headerRequestID: {"0b7c1a9e-5f39-4d61-9f8e-2d0a1c3b4e5f"},
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}
	w := &statusWriter{code: 200, out: 1234}
	for _, f := range []AccessLogFormat{AccessLogText, AccessLogJSON} {
		name := map[AccessLogFormat]string{AccessLogText: "text", AccessLogJSON: "json"}[f]
		b.Run(name, func(b *testing.B) {
			p := &Proxy{opts: Options{AccessLogFormat: f}, access: &accessLog{w: &lastWrite{}}}
			b.ReportAllocs()
			for b.Loop() {
				p.accessLine("access", "outbound").str("dest", "api").str("route", "-").str("endpoint", "127.0.0.1:9000").
					str("method", "GET").str("path", "/hello/world").int("status", 200).int("tries", 1).
					dur("dur", 1500*time.Microsecond).str("caller", "spiffe://weft.local/ns/default/svc/web").
					int("retries", 0).request(r, w).send(p)
			}
		})
	}
}
