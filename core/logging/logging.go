package logging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Levels are the values --log-level takes, lowest first.
var Levels = []string{"debug", "info", "warn", "error"}

// Formats are the values --log-format takes.
var Formats = []string{"text", "json"}

// FlagError is a bad value of a logging flag. Binaries exit with status 2
// on it, as on any other usage error.
type FlagError struct {
	Flag string // "--log-level"
	Want string // "debug, info, warn or error"
	Got  string
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("%s: want %s, got %q", e.Flag, e.Want, e.Got)
}

// ParseLevel reads a --log-level value: debug, info, warn or error, in
// any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, &FlagError{Flag: "--log-level", Want: "debug, info, warn or error", Got: s}
}

// ParseFormat reads a --log-format value: text or json, in any case.
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(s); f {
	case "text", "json":
		return f, nil
	}
	return "", &FlagError{Flag: "--log-format", Want: "text or json", Got: s}
}

// New returns a logger writing records at level and above to w, as slog's
// JSON handler does for format "json" and its text handler otherwise.
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// Flags are the two logging flags of a binary.
type Flags struct {
	Level, Format string
}

// flagSet is what Register needs of a flag set: both the standard
// library's and pflag's (cobra's) have it.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
}

// LevelEnv and FormatEnv, when set, are the defaults of --log-level and
// --log-format: a controller started with them passes them on to what it
// starts (adapter plugins, and the sidecars and apps the local adapter
// runs), so a whole local mesh logs one way.
const (
	LevelEnv  = "WEFT_LOG_LEVEL"
	FormatEnv = "WEFT_LOG_FORMAT"
)

// Register adds --log-level and --log-format to fs, their defaults from
// LevelEnv and FormatEnv when set, else info and text.
func (f *Flags) Register(fs flagSet) {
	fs.StringVar(&f.Level, "log-level", EnvOr(LevelEnv, "info"), "lowest level logged: debug, info, warn or error (default from $"+LevelEnv+")")
	fs.StringVar(&f.Format, "log-format", EnvOr(FormatEnv, "text"), "log line format: text (key=value) or json (one object a line) (default from $"+FormatEnv+")")
}

// EnvOr is the environment variable name, or def when it is unset or
// empty.
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Logger checks the flags and returns the logger they ask for, writing to
// w. A bad value is a *FlagError.
func (f *Flags) Logger(w io.Writer) (*slog.Logger, error) {
	level, err := ParseLevel(f.Level)
	if err != nil {
		return nil, err
	}
	format, err := ParseFormat(f.Format)
	if err != nil {
		return nil, err
	}
	return New(w, level, format), nil
}

// LowestLevel is the lowest of Levels that l logs ("error" when it logs
// none of them): the level to hand a child process.
func LowestLevel(l *slog.Logger) string {
	for _, s := range Levels {
		lv, _ := ParseLevel(s)
		if l.Enabled(context.Background(), lv) {
			return s
		}
	}
	return "error"
}

// LineWriter returns a writer that logs each line written to it as one
// record at level, its text the message (blank lines are dropped). It is
// for libraries that print lines: log.New(LineWriter(l, slog.LevelWarn),
// "", 0) as net/http's ErrorLog.
func LineWriter(l *slog.Logger, level slog.Level) io.Writer {
	return &lineWriter{l: l, level: level}
}

type lineWriter struct {
	l     *slog.Logger
	level slog.Level
}

func (w *lineWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte("\n")) {
		if s := strings.TrimSpace(string(line)); s != "" {
			w.l.Log(context.Background(), w.level, s)
		}
	}
	return len(p), nil
}
