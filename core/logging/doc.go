// Package logging builds the one log/slog logger of every Weft binary
// (weft, weft-proxy, the demo app) from two flags, --log-level
// (debug, info, warn, error; default info) and --log-format (text, json;
// default text):
//
//	var lf logging.Flags
//	lf.Register(cmd.Flags())      // a pflag or a standard flag set
//	log, err := lf.Logger(os.Stderr) // a *FlagError for a bad value: exit 2
//
// New(w, level, format) is the logger itself: slog's text or JSON
// handler, nothing of ours in between, so a line is what slog writes
// ("time=... level=INFO msg=... key=value" or one JSON object).
//
// Lines that other libraries would print raw are brought onto the same
// logger: LineWriter turns each line written to it into a record (for a
// standard library *log.Logger such as net/http's ErrorLog), and
// GRPCLogger is a grpclog.LoggerV2 over the logger (grpc-go otherwise
// prints its errors to stderr in its own format).
//
// Adapter plugins are separate processes: their lines reach the controller
// through go-plugin (plugins/host, slog.go), and the controller passes
// them its level in the environment (plugins.LogLevelEnv).
//
// Access logs are not events and do not go through this logger: see
// core/proxy (accesslog.go) and weft-proxy's --access-log-format.
package logging
