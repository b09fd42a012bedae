package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer records writes: how many and what.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	wrote  chan struct{}
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) state() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.writes
}

func TestLogWriterBatchesLines(t *testing.T) {
	out := &lockedBuffer{wrote: make(chan struct{}, 1)}
	lw := newLogWriter(out, 20*time.Millisecond)
	for i := range 100 {
		lw.Write([]byte(strings.Repeat("x", i%7) + "\n"))
	}
	select {
	case <-out.wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing written within 5 s of logging")
	}
	got, writes := out.state()
	if writes != 1 || strings.Count(got, "\n") != 100 {
		t.Fatalf("%d writes holding %d lines, want 1 write of 100 lines", writes, strings.Count(got, "\n"))
	}
}

func TestLogWriterWritesFullBufferAndRestOnClose(t *testing.T) {
	out := &lockedBuffer{wrote: make(chan struct{}, 1)}
	lw := newLogWriter(out, time.Hour)
	line := []byte(strings.Repeat("y", 1023) + "\n")
	for range logBufMax / len(line) {
		lw.Write(line)
	}
	if _, writes := out.state(); writes != 1 {
		t.Fatalf("a full buffer made %d writes, want 1", writes)
	}
	lw.Write([]byte("last\n"))
	lw.Close()
	got, writes := out.state()
	if writes != 2 || !strings.HasSuffix(got, "last\n") {
		t.Fatalf("after Close: %d writes, ends %q; want 2 writes ending with the last line", writes, got[max(0, len(got)-10):])
	}
}

func TestLogWriterUnbuffered(t *testing.T) {
	out := &lockedBuffer{wrote: make(chan struct{}, 1)}
	lw := newLogWriter(out, 0)
	lw.Write([]byte("a\n"))
	lw.Write([]byte("b\n"))
	if got, writes := out.state(); writes != 2 || got != "a\nb\n" {
		t.Fatalf("%d writes of %q, want 2 of \"a\\nb\\n\"", writes, got)
	}
}

// TestLogWriterKeepsEntriesOnOneLine: whatever an entry carries, it is
// one line of the log, batched or not.
func TestLogWriterKeepsEntriesOnOneLine(t *testing.T) {
	for _, every := range []time.Duration{0, time.Hour} {
		for _, tt := range []struct{ in, want string }{
			{"plain\n", "plain\n"},
			{"tab\tkept\n", "tab\tkept\n"},
			{"a\nforged line\n", "a\\x0Aforged line\n"},
			{"nul\x00and\rcr\x7f\n", "nul\\x00and\\x0Dcr\\x7F\n"},
			{"no newline", "no newline\n"},
		} {
			out := &lockedBuffer{wrote: make(chan struct{}, 1)}
			lw := newLogWriter(out, every)
			if n, err := lw.Write([]byte(tt.in)); n != len(tt.in) || err != nil {
				t.Errorf("Write(%q) = %d, %v", tt.in, n, err)
			}
			lw.Close()
			if got, _ := out.state(); got != tt.want {
				t.Errorf("every %v: %q written as %q, want %q", every, tt.in, got, tt.want)
			}
		}
	}
}

// FuzzLogWriterEntry: one entry is one line, with no NUL or carriage
// return, and printable input is written unchanged.
func FuzzLogWriterEntry(f *testing.F) {
	f.Add([]byte("access inbound path=/x\n"))
	f.Add([]byte("a\nb\x00c\r\n"))
	f.Fuzz(func(t *testing.T, entry []byte) {
		if len(entry) == 0 {
			return
		}
		got := oneLine(entry)
		if bytes.IndexByte(got, '\n') != len(got)-1 || bytes.IndexByte(got, 0) >= 0 || bytes.IndexByte(got, '\r') >= 0 {
			t.Fatalf("oneLine(%q) = %q", entry, got)
		}
		body := bytes.TrimSuffix(entry, []byte("\n"))
		if bytes.IndexFunc(body, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) < 0 && !bytes.Equal(got[:len(got)-1], body) {
			t.Fatalf("oneLine(%q) = %q changed a clean entry", entry, got)
		}
	})
}
