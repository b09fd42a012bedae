package proxy

import (
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
