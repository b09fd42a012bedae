package logging

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"google.golang.org/grpc/grpclog"
)

// GRPCLogger is a grpclog.LoggerV2 writing to l: grpc-go's warnings and
// errors at their levels, its info (a dozen lines per connection) at
// LevelGRPCInfo, below debug, so that no --log-level shows it, as grpc-go
// shows none by default. Install it with
// grpclog.SetLoggerV2 before any gRPC call. Fatal logs at error and exits
// with status 1, as grpclog's contract asks.
func GRPCLogger(l *slog.Logger) grpclog.LoggerV2 {
	return &grpcLogger{l: l.With("logger", "grpc")}
}

// LevelGRPCInfo is the level of grpc-go's info lines.
const LevelGRPCInfo = slog.LevelDebug - 4

type grpcLogger struct{ l *slog.Logger }

func (g *grpcLogger) log(level slog.Level, msg string) {
	g.l.Log(context.Background(), level, msg)
}

func (g *grpcLogger) Info(args ...any)    { g.log(LevelGRPCInfo, fmt.Sprint(args...)) }
func (g *grpcLogger) Infoln(args ...any)  { g.log(LevelGRPCInfo, sprintln(args...)) }
func (g *grpcLogger) Warning(args ...any) { g.log(slog.LevelWarn, fmt.Sprint(args...)) }
func (g *grpcLogger) Warningln(args ...any) {
	g.log(slog.LevelWarn, sprintln(args...))
}
func (g *grpcLogger) Error(args ...any)   { g.log(slog.LevelError, fmt.Sprint(args...)) }
func (g *grpcLogger) Errorln(args ...any) { g.log(slog.LevelError, sprintln(args...)) }
func (g *grpcLogger) Fatal(args ...any) {
	g.log(slog.LevelError, fmt.Sprint(args...))
	os.Exit(1)
}
func (g *grpcLogger) Fatalln(args ...any) {
	g.log(slog.LevelError, sprintln(args...))
	os.Exit(1)
}
func (g *grpcLogger) Infof(format string, args ...any) {
	g.log(LevelGRPCInfo, fmt.Sprintf(format, args...))
}
func (g *grpcLogger) Warningf(format string, args ...any) {
	g.log(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (g *grpcLogger) Errorf(format string, args ...any) {
	g.log(slog.LevelError, fmt.Sprintf(format, args...))
}
func (g *grpcLogger) Fatalf(format string, args ...any) {
	g.log(slog.LevelError, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// V reports whether verbosity level v is logged: grpc-go's verbose
// messages go where its info does.
func (g *grpcLogger) V(v int) bool { return g.l.Enabled(context.Background(), LevelGRPCInfo) }

func sprintln(args ...any) string {
	s := fmt.Sprintln(args...)
	return s[:len(s)-1]
}
