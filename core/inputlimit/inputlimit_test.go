package inputlimit

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// endless is a reader that never ends, like /dev/zero.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '['
	}
	e.read += int64(len(p))
	return len(p), nil
}

func TestRead(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		limit int64
		ok    bool
	}{
		{"empty", 0, 10, true},
		{"at the limit", 10, 10, true},
		{"one byte over", 11, 10, false},
		{"far over", 1 << 20, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, []byte(strings.Repeat("x", tt.size)), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := ReadFile(path, tt.limit)
			if tt.ok {
				if err != nil || len(b) != tt.size {
					t.Fatalf("ReadFile: %d bytes, %v", len(b), err)
				}
				return
			}
			var tl *TooLargeError
			if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) || tl.Limit != tt.limit || tl.Path != path || b != nil {
				t.Fatalf("ReadFile: %d bytes, %v; want a TooLargeError for %s", len(b), err, path)
			}
		})
	}
	// An endless input is read to the limit plus one byte, no further.
	e := &endless{}
	if _, err := Read(io.Reader(e), "endless", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read of an endless input: %v", err)
	}
	if e.read > 1<<20+64<<10 {
		t.Errorf("read %d bytes of an endless input for a limit of 1 MiB", e.read)
	}
}

func TestJSONDepth(t *testing.T) {
	tests := []struct {
		name, src string
		line      int // 0: within the limit
	}{
		{"flat", `{"a": [1, 2, {"b": 3}]}`, 0},
		{"at the limit", strings.Repeat("[", 8) + strings.Repeat("]", 8), 0},
		{"past the limit", "{\n\"a\":" + strings.Repeat("[", 8), 2},
		{"brackets in strings", `{"a": "` + strings.Repeat("[{", 100) + `"}`, 0},
		{"escaped quote in a string", `{"a": "\"` + strings.Repeat("[", 100) + `"}`, 0},
		{"escaped backslash ends the string", `{"a": "\\"` + strings.Repeat("[", 100), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := JSONDepth([]byte(tt.src), 8)
			var deep *TooDeepError
			if tt.line == 0 {
				if err != nil {
					t.Fatalf("JSONDepth: %v", err)
				}
				return
			}
			if !errors.As(err, &deep) || deep.Line != tt.line || deep.Limit != 8 || !errors.Is(err, ErrTooDeep) {
				t.Fatalf("JSONDepth: %v, want too deep at line %d", err, tt.line)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 64 << 10: "64 KiB", 100: "100 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
