package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"debug", slog.LevelDebug, true},
		{"info", slog.LevelInfo, true},
		{"warn", slog.LevelWarn, true},
		{"error", slog.LevelError, true},
		{"DEBUG", slog.LevelDebug, true},
		{"Warn", slog.LevelWarn, true},
		{"", 0, false},
		{"warning", 0, false},
		{"trace", 0, false},
		{" info", 0, false},
		{"info\n", 0, false},
		{"-4", 0, false},
		{strings.Repeat("x", 1<<16), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 16)], func(t *testing.T) {
			got, err := ParseLevel(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("ParseLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
				}
				return
			}
			var fe *FlagError
			if !errors.As(err, &fe) || fe.Flag != "--log-level" {
				t.Fatalf("ParseLevel(%q) = %v, %v; want a --log-level FlagError", tt.in, got, err)
			}
			if !strings.Contains(err.Error(), "want debug, info, warn or error") {
				t.Errorf("the error does not say what to give: %v", err)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"text", "text"}, {"json", "json"}, {"JSON", "json"}, {"Text", "text"},
		{"yaml", ""}, {"", ""}, {"logfmt", ""}, {"json ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("ParseFormat(%q) = %q, %v", tt.in, got, err)
				}
				return
			}
			var fe *FlagError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFormat(%q) = %q, %v; want a FlagError", tt.in, got, err)
			}
		})
	}
	_, err := ParseFormat("yaml")
	if want := `--log-format: want text or json, got "yaml"`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// textLine is a line of slog's text handler.
var textLine = regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=("([^"\\]|\\.)*"|\S+)( \S+=("([^"\\]|\\.)*"|\S*))*$`)

// TestNew: every line of each format is one record of it, and the level
// filters.
func TestNew(t *testing.T) {
	for _, format := range Formats {
		for _, level := range Levels {
			t.Run(format+"/"+level, func(t *testing.T) {
				var fl Flags
				fs := flag.NewFlagSet("x", flag.ContinueOnError)
				fl.Register(fs)
				if err := fs.Parse([]string{"--log-level", level, "--log-format", format}); err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				l, err := fl.Logger(&buf)
				if err != nil {
					t.Fatal(err)
				}
				l.Debug("d", "k", "v")
				l.Info("i", "path", "/x\ny \"quoted\"")
				l.Warn("w", "bytes", "\x00\xff")
				l.Error("e")
				lw := LineWriter(l, slog.LevelWarn)
				log.New(lw, "", 0).Print("a raw line\nand another")
				lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
				want := map[string]int{"debug": 6, "info": 5, "warn": 4, "error": 1}[level]
				if len(lines) != want {
					t.Fatalf("%d lines at level %s, want %d:\n%s", len(lines), level, want, buf.String())
				}
				for _, line := range lines {
					if format == "json" {
						var m map[string]any
						if err := json.Unmarshal([]byte(line), &m); err != nil {
							t.Fatalf("not JSON: %q: %v", line, err)
						}
						if m["level"] == nil || m["msg"] == nil || m["time"] == nil {
							t.Fatalf("no time, level or msg: %q", line)
						}
						continue
					}
					if !textLine.MatchString(line) {
						t.Fatalf("not a text line: %q", line)
					}
				}
				if LowestLevel(l) != level {
					t.Errorf("LowestLevel = %s, want %s", LowestLevel(l), level)
				}
			})
		}
	}
}

func TestFlagsReject(t *testing.T) {
	for _, args := range [][]string{{"--log-level", "verbose"}, {"--log-format", "yaml"}} {
		t.Run(args[1], func(t *testing.T) {
			var fl Flags
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fl.Register(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			var fe *FlagError
			if _, err := fl.Logger(&bytes.Buffer{}); !errors.As(err, &fe) || fe.Flag != args[0] {
				t.Fatalf("err %v, want a FlagError for %s", err, args[0])
			}
		})
	}
}

func TestGRPCLogger(t *testing.T) {
	var buf bytes.Buffer
	g := GRPCLogger(New(&buf, slog.LevelDebug, "json"))
	g.Info("chatty")
	g.Warningf("w %d", 1)
	g.Errorln("e", 2)
	if g.V(0) {
		t.Error("V(0) is true at debug")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q, want the warning and the error", lines)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || m["msg"] != "e 2" || m["level"] != "ERROR" || m["logger"] != "grpc" {
		t.Fatalf("line %q: %v %v", lines[1], m, err)
	}
}

// TestEnvDefaults: WEFT_LOG_LEVEL and WEFT_LOG_FORMAT are the flags'
// defaults; a flag given wins; a bad value in them is the flag's error.
func TestEnvDefaults(t *testing.T) {
	t.Setenv(LevelEnv, "warn")
	t.Setenv(FormatEnv, "json")
	var fl Flags
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fl.Register(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if fl.Level != "warn" || fl.Format != "json" {
		t.Fatalf("defaults %q %q, want warn json from the environment", fl.Level, fl.Format)
	}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	fl.Register(fs)
	if err := fs.Parse([]string{"--log-format", "text"}); err != nil || fl.Format != "text" {
		t.Fatalf("a flag given: %q, %v; want text", fl.Format, err)
	}
	t.Setenv(FormatEnv, "yaml")
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	fl.Register(fs)
	fs.Parse(nil)
	if _, err := fl.Logger(&bytes.Buffer{}); err == nil || err.Error() != `--log-format: want text or json, got "yaml"` {
		t.Fatalf("err %v", err)
	}
}
