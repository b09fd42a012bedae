package proxy

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestEnsureRequestID: a missing ID is added, a sane one kept, and every
// other spelling and size replaced by a fresh one.
func TestEnsureRequestID(t *testing.T) {
	long := strings.Repeat("a", maxRequestID)
	tests := []struct {
		name   string
		values []string // nil: no header
		keep   bool
	}{
		{"missing", nil, false},
		{"uuid", []string{"0b7c1a9e-5f39-4d61-9f8e-2d0a1c3b4e5f"}, true},
		{"hex", []string{"4bf92f3577b34da6a3ce929d0e0e4736"}, true},
		{"base64", []string{"AbC+/d=="}, true},
		{"aws style", []string{"Root=1-5759e988-bd862e3fe1be46a994272793"}, true},
		{"one byte", []string{"x"}, true},
		{"at the limit", []string{long}, true},
		{"one past the limit", []string{long + "a"}, false},
		{"huge", []string{strings.Repeat("a", 1<<20)}, false},
		{"empty", []string{""}, false},
		{"two values", []string{"a", "b"}, false},
		{"no value", []string{}, false},
		{"space", []string{"a b"}, false},
		{"newline", []string{"a\nx-forged: 1"}, false},
		{"CR", []string{"a\r"}, false},
		{"NUL", []string{"a\x00"}, false},
		{"tab", []string{"a\tb"}, false},
		{"quote", []string{`a"b`}, false},
		{"backslash", []string{`a\b`}, false},
		{"comma", []string{"a,b"}, false},
		{"semicolon", []string{"a;b"}, false},
		{"angle brackets", []string{"<script>"}, false},
		{"percent", []string{"a%0ab"}, false},
		{"UTF-8", []string{"é"}, false},
		{"invalid UTF-8", []string{"a\xff"}, false},
		{"DEL", []string{"a\x7f"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.values != nil {
				h[headerRequestID] = tt.values
			}
			got := ensureRequestID(h)
			if v := h[headerRequestID]; len(v) != 1 || v[0] != got {
				t.Fatalf("header %q after, returned %q: want one value, the one returned", v, got)
			}
			if tt.keep {
				if got != tt.values[0] {
					t.Fatalf("replaced %q with %q; want it kept", tt.values[0], got)
				}
				return
			}
			if !uuidV4.MatchString(got) {
				t.Fatalf("got %q, want a fresh UUID", got)
			}
		})
	}
}

func TestNewRequestIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := newRequestID()
		if !uuidV4.MatchString(id) || seen[id] {
			t.Fatalf("ID %q: not a UUID, or seen before", id)
		}
		seen[id] = true
	}
}

func TestTraceID(t *testing.T) {
	const ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"valid", []string{ok}, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"later version with more", []string{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"missing", nil, ""},
		{"two", []string{ok, ok}, ""},
		{"upper case", []string{strings.ToUpper(ok)}, ""},
		{"short", []string{ok[:54]}, ""},
		{"longer without a dash", []string{ok + "0"}, ""},
		{"version ff", []string{"ff" + ok[2:]}, ""},
		{"zero trace", []string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{"bad byte", []string{"00-4bf92f3577b34da6a3ce929d0e0e473\n-00f067aa0ba902b7-01"}, ""},
		{"dashes moved", []string{"004-bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.values != nil {
				h["Traceparent"] = tt.values
			}
			if got := traceID(h); got != tt.want {
				t.Fatalf("traceID = %q, want %q", got, tt.want)
			}
		})
	}
}

// BenchmarkEnsureRequestID: keeping an ID allocates nothing; adding one
// allocates the ID and its header slice.
func BenchmarkEnsureRequestID(b *testing.B) {
	b.Run("kept", func(b *testing.B) {
		h := http.Header{headerRequestID: {"0b7c1a9e-5f39-4d61-9f8e-2d0a1c3b4e5f"}}
		b.ReportAllocs()
		for b.Loop() {
			ensureRequestID(h)
		}
	})
	b.Run("added", func(b *testing.B) {
		h := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			delete(h, headerRequestID)
			ensureRequestID(h)
		}
	})
}
