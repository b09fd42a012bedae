package host

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// HCLogger returns an hclog.Logger that writes to l: go-plugin logs
// through hclog (its own messages, and each line a plugin writes to its
// standard error), and the controller logs through log/slog, so this
// bridge makes them one log, in the controller's format (--log-format).
// Levels map one to one, Trace to slog's Debug-4; a name becomes the
// attribute "logger". A plugin's JSON lines (sdk.Logger) come through at
// their own level with their fields; any other line it prints (a panic
// and its stack, line by line) at error once a "panic: " line started it,
// else at debug, as go-plugin reads them.
//
// What a plugin prints to its os.Stdout or os.Stderr once it serves
// (go-plugin carries both to the host) is logged line by line at info,
// with the attribute stream (rawLines); without that it would be lost.
//
// The plugin gets the controller's lowest level in plugins.LogLevelEnv
// (pluginLevel), so it does not write what the controller would drop.
func HCLogger(l *slog.Logger) hclog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return &slogLogger{l: l, level: hclog.Trace}
}

// slogLogger is an hclog.Logger over a *slog.Logger.
type slogLogger struct {
	l     *slog.Logger
	name  string
	args  []any // the implied arguments of With
	level hclog.Level
}

// levelTrace is hclog's Trace on slog's scale, below Debug.
const levelTrace = slog.LevelDebug - 4

// rawLines logs each line written to it at info, with stream.
func rawLines(l *slog.Logger, stream string) io.Writer {
	l = l.With("stream", stream)
	return writerFunc(func(p []byte) (int, error) {
		for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
			if s := strings.TrimSpace(string(line)); s != "" {
				l.Info(s)
			}
		}
		return len(p), nil
	})
}

// pluginLevel is the lowest level l logs, as hclog names it, for
// plugins.LogLevelEnv.
func pluginLevel(l *slog.Logger) string {
	for _, lv := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if l.Enabled(context.Background(), slogLevel(lv)) {
			return lv.String()
		}
	}
	return hclog.Error.String()
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error, hclog.Off:
		return slog.LevelError
	default: // Info, NoLevel
		return slog.LevelInfo
	}
}

func (s *slogLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off || (s.level != hclog.NoLevel && level < s.level) {
		return
	}
	lv := slogLevel(level)
	ctx := context.Background()
	if !s.l.Enabled(ctx, lv) {
		return
	}
	all := make([]any, 0, len(s.args)+len(args)+2)
	if s.name != "" {
		all = append(all, "logger", s.name)
	}
	all = append(all, s.args...)
	all = append(all, args...)
	if len(all)%2 == 1 {
		// hclog's convention for a lone argument.
		all = append(all[:len(all)-1], hclog.MissingKey, all[len(all)-1])
	}
	s.l.Log(ctx, lv, msg, all...)
}

func (s *slogLogger) Trace(msg string, args ...interface{}) { s.Log(hclog.Trace, msg, args...) }
func (s *slogLogger) Debug(msg string, args ...interface{}) { s.Log(hclog.Debug, msg, args...) }
func (s *slogLogger) Info(msg string, args ...interface{})  { s.Log(hclog.Info, msg, args...) }
func (s *slogLogger) Warn(msg string, args ...interface{})  { s.Log(hclog.Warn, msg, args...) }
func (s *slogLogger) Error(msg string, args ...interface{}) { s.Log(hclog.Error, msg, args...) }

func (s *slogLogger) enabled(l hclog.Level) bool {
	return l >= s.level && s.l.Enabled(context.Background(), slogLevel(l))
}

func (s *slogLogger) IsTrace() bool { return s.enabled(hclog.Trace) }
func (s *slogLogger) IsDebug() bool { return s.enabled(hclog.Debug) }
func (s *slogLogger) IsInfo() bool  { return s.enabled(hclog.Info) }
func (s *slogLogger) IsWarn() bool  { return s.enabled(hclog.Warn) }
func (s *slogLogger) IsError() bool { return s.enabled(hclog.Error) }

func (s *slogLogger) ImpliedArgs() []interface{} { return append([]any(nil), s.args...) }

func (s *slogLogger) With(args ...interface{}) hclog.Logger {
	c := *s
	c.args = append(append([]any(nil), s.args...), args...)
	return &c
}

func (s *slogLogger) Name() string { return s.name }

func (s *slogLogger) Named(name string) hclog.Logger {
	c := *s
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (s *slogLogger) ResetNamed(name string) hclog.Logger {
	c := *s
	c.name = name
	return &c
}

func (s *slogLogger) SetLevel(level hclog.Level) { s.level = level }

func (s *slogLogger) GetLevel() hclog.Level { return s.level }

func (s *slogLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(s.StandardWriter(opts), "", 0)
}

func (s *slogLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
			s.Info(strings.TrimSpace(string(line)))
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ hclog.Logger = (*slogLogger)(nil)
