package tracing

import (
	"net/http"
	"strings"
	"testing"
)

const (
	tid  = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid  = "00f067aa0ba902b7"
	tid8 = "a3ce929d0e0e4736"
)

func TestExtract(t *testing.T) {
	type want struct {
		ok, hasIDs, decided, sampled bool
		trace, span, state           string
		formats                      Format
	}
	tests := []struct {
		name string
		h    http.Header
		want want
	}{
		{"none", http.Header{}, want{}},
		{"w3c sampled", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: W3C}},
		{"w3c unsampled", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-00"}},
			want{ok: true, hasIDs: true, decided: true, trace: tid, span: sid, formats: W3C}},
		{"w3c other flag bits", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-03"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: W3C}},
		{"w3c with tracestate", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01"}, HeaderTracestate: {"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, state: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", formats: W3C}},
		{"w3c future version with a field", http.Header{HeaderTraceparent: {"01-" + tid + "-" + sid + "-01-what-the-future-holds"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: W3C}},
		{"w3c upper case", http.Header{HeaderTraceparent: {"00-" + strings.ToUpper(tid) + "-" + sid + "-01"}}, want{formats: W3C}},
		{"w3c version ff", http.Header{HeaderTraceparent: {"ff-" + tid + "-" + sid + "-01"}}, want{formats: W3C}},
		{"w3c version 00 too long", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01-x"}}, want{formats: W3C}},
		{"w3c zero trace id", http.Header{HeaderTraceparent: {"00-" + strings.Repeat("0", 32) + "-" + sid + "-01"}}, want{formats: W3C}},
		{"w3c zero span id", http.Header{HeaderTraceparent: {"00-" + tid + "-" + strings.Repeat("0", 16) + "-01"}}, want{formats: W3C}},
		{"w3c wrong separators", http.Header{HeaderTraceparent: {"00_" + tid + "_" + sid + "_01"}}, want{formats: W3C}},
		{"w3c short", http.Header{HeaderTraceparent: {"00-" + tid[:31] + "-" + sid + "-01"}}, want{formats: W3C}},
		{"w3c non-hex", http.Header{HeaderTraceparent: {"00-" + tid[:31] + "g-" + sid + "-01"}}, want{formats: W3C}},
		{"w3c spaces", http.Header{HeaderTraceparent: {" 00-" + tid + "-" + sid + "-01"}}, want{formats: W3C}},
		{"w3c repeated", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01", "00-" + tid + "-" + sid + "-01"}}, want{formats: W3C}},
		{"w3c oversize", http.Header{HeaderTraceparent: {"01-" + tid + "-" + sid + "-01-" + strings.Repeat("a", 1<<20)}}, want{formats: W3C}},
		{"tracestate oversize dropped", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01"}, HeaderTracestate: {"a=" + strings.Repeat("b", MaxTracestate)}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: W3C}},
		{"tracestate too many members dropped", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01"}, HeaderTracestate: {strings.Repeat("a=b,", 32) + "a=b"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: W3C}},
		{"tracestate control char dropped", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01"}, HeaderTracestate: {"a=b\x00"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: W3C}},
		{"b3 single", http.Header{HeaderB3: {tid + "-" + sid + "-1"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: B3Single}},
		{"b3 single debug with parent", http.Header{HeaderB3: {tid + "-" + sid + "-d-" + sid}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: B3Single}},
		{"b3 single deferred", http.Header{HeaderB3: {tid + "-" + sid}},
			want{ok: true, hasIDs: true, trace: tid, span: sid, formats: B3Single}},
		{"b3 single 64-bit trace id", http.Header{HeaderB3: {tid8 + "-" + sid + "-0"}},
			want{ok: true, hasIDs: true, decided: true, trace: "0000000000000000" + tid8, span: sid, formats: B3Single}},
		{"b3 single deny alone", http.Header{HeaderB3: {"0"}}, want{ok: true, decided: true, formats: B3Single}},
		{"b3 single bad sampling", http.Header{HeaderB3: {tid + "-" + sid + "-x"}}, want{formats: B3Single}},
		{"b3 single bad parent", http.Header{HeaderB3: {tid + "-" + sid + "-1-zz"}}, want{formats: B3Single}},
		{"b3 single five fields", http.Header{HeaderB3: {tid + "-" + sid + "-1-" + sid + "-1"}}, want{formats: B3Single}},
		{"b3 single oversize", http.Header{HeaderB3: {tid + "-" + sid + "-1-" + sid + strings.Repeat("0", 4096)}}, want{formats: B3Single}},
		{"b3 single upper case", http.Header{HeaderB3: {strings.ToUpper(tid) + "-" + sid + "-1"}}, want{formats: B3Single}},
		{"b3 multi", http.Header{HeaderB3TraceID: {tid}, HeaderB3SpanID: {sid}, HeaderB3Sampled: {"1"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: B3Multi}},
		{"b3 multi legacy true", http.Header{HeaderB3TraceID: {tid}, HeaderB3SpanID: {sid}, HeaderB3Sampled: {"true"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: B3Multi}},
		{"b3 multi debug flag", http.Header{HeaderB3TraceID: {tid}, HeaderB3SpanID: {sid}, HeaderB3Flags: {"1"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: B3Multi}},
		{"b3 multi unsampled", http.Header{HeaderB3TraceID: {tid8}, HeaderB3SpanID: {sid}, HeaderB3Sampled: {"0"}},
			want{ok: true, hasIDs: true, decided: true, trace: "0000000000000000" + tid8, span: sid, formats: B3Multi}},
		{"b3 multi no span id", http.Header{HeaderB3TraceID: {tid}, HeaderB3Sampled: {"1"}}, want{formats: B3Multi}},
		{"b3 multi repeated", http.Header{HeaderB3TraceID: {tid, tid}, HeaderB3SpanID: {sid}}, want{formats: B3Multi}},
		{"b3 multi oversize", http.Header{HeaderB3TraceID: {tid + strings.Repeat("0", 1<<16)}, HeaderB3SpanID: {sid}}, want{formats: B3Multi}},
		{"b3 multi bad sampled", http.Header{HeaderB3TraceID: {tid}, HeaderB3SpanID: {sid}, HeaderB3Sampled: {"yes"}}, want{formats: B3Multi}},
		{"w3c wins over b3", http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-00"}, HeaderB3: {tid8 + "-" + sid + "-1"}},
			want{ok: true, hasIDs: true, decided: true, trace: tid, span: sid, formats: W3C | B3Single}},
		{"bad w3c falls back to b3", http.Header{HeaderTraceparent: {"garbage"}, HeaderB3: {tid + "-" + sid + "-1"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: W3C | B3Single}},
		{"bad b3 single falls back to multi", http.Header{HeaderB3: {"x"}, HeaderB3TraceID: {tid}, HeaderB3SpanID: {sid}, HeaderB3Sampled: {"1"}},
			want{ok: true, hasIDs: true, decided: true, sampled: true, trace: tid, span: sid, formats: B3Single | B3Multi}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Extract(tt.h)
			got := want{ok: ok, hasIDs: p.HasIDs, decided: p.Decided, sampled: p.Sampled, state: p.TraceState, formats: p.Formats}
			if p.HasIDs {
				got.trace, got.span = hexs(p.TraceID[:]), hexs(p.SpanID[:])
			}
			if got != tt.want {
				t.Errorf("Extract = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestInjectRoundTrip: what Inject writes, Extract reads back, in every
// format the request came with, and stale B3 fields are replaced.
func TestInjectRoundTrip(t *testing.T) {
	c := Child{Sampled: true, TraceState: "rojo=1"}
	copy(c.TraceID[:], []byte("0123456789abcdef"))
	copy(c.SpanID[:], []byte("spanid01"))
	copy(c.ParentID[:], []byte("parent01"))
	for _, tt := range []struct {
		name    string
		formats Format
		check   []string
	}{
		{"w3c only", W3C, []string{HeaderTraceparent, HeaderTracestate}},
		{"b3 single too", W3C | B3Single, []string{HeaderTraceparent, HeaderB3}},
		{"b3 multi too", B3Multi, []string{HeaderTraceparent, HeaderB3TraceID, HeaderB3SpanID, HeaderB3Sampled, HeaderB3Parent}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{HeaderB3Flags: {"1"}}
			Inject(h, c, tt.formats)
			for _, k := range tt.check {
				if len(h[k]) != 1 {
					t.Errorf("header %s = %q, want one value", k, h[k])
				}
			}
			if tt.formats&B3Multi != 0 && h[HeaderB3Flags] != nil {
				t.Errorf("the stale X-B3-Flags stayed: %q", h[HeaderB3Flags])
			}
			for _, only := range []Format{W3C, B3Single, B3Multi} {
				if tt.formats&only == 0 && only != W3C {
					continue
				}
				hh := http.Header{}
				for k, v := range h {
					switch {
					case only == W3C && (k == HeaderTraceparent || k == HeaderTracestate),
						only == B3Single && k == HeaderB3,
						only == B3Multi && strings.HasPrefix(k, "X-B3-"):
						hh[k] = v
					}
				}
				p, ok := Extract(hh)
				if !ok || p.TraceID != c.TraceID || p.SpanID != c.SpanID || !p.Sampled {
					t.Errorf("format %d: read back %+v ok=%v from %v", only, p, ok, hh)
				}
			}
		})
	}
}
