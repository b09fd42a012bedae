// Package host is the controller's side of the adapter plugins: it finds a
// plugin binary, verifies its SHA-256 and launches it with go-plugin (gRPC
// only, AutoMTLS), negotiates the protocol version, checks the operator's
// options against the schema the adapter declares, configures it, forwards
// its snapshots, and restarts it with backoff (core/backoff) when it dies.
//
// Entry point: New, one Supervisor per adapter; its Run launches and
// supervises the plugin (its Updates feed the controller's registry), and
// its VerifyIdentity asks the plugin that runs at the time what a sidecar's
// scheduler credential proves (ErrNotRunning between a crash and the
// restart). Supervise is New and Run in one call. Find resolves a
// third-party adapter in the plugin directory (weft-adapter-<name>);
// built-in adapters run as `weft adapter <name>` through the same path.
//
// Options: after Info, Run checks ConfigureRequest.Options against
// InfoResponse.Options (plugins.CheckOptions): a declared option whose
// value does not fit its type, or a required one missing, fails that start
// with an error naming the option, its type and what is wrong, retried like
// a Configure error. Options the adapter does not declare reach it, which
// refuses or ignores them.
//
// Logging: one logger, Options.Logger (log/slog). go-plugin logs through
// hclog, its own messages and each line a plugin writes to standard error
// (plugins/sdk.Logger writes JSON there); HCLogger bridges those into the
// slog logger, levels mapped one to one.
//
// Checksums: every launch is verified by SHA-256 (go-plugin's SecureConfig,
// Options.Checksum, required). The controller pins a built-in adapter to
// its own binary as it was at start (FileChecksum of os.Executable), and a
// third-party one with Pin: the operator's --plugin-checksum
// NAME=sha256:HEX, or else the file weft-adapter-<name>.sha256 beside the
// binary, as `sha256sum` writes it. We chose the file the way Packer keeps
// a SHA256SUM file beside each installed plugin, because operators already
// have the tool that writes it; the flag is for those who keep the pin with
// the controller's configuration, out of reach of whoever can write the
// plugin directory (Terraform's lock file plays that part), and wins. An
// unpinned plugin is refused with its actual SHA-256 and both ways to pin
// it; a binary changed after pinning is refused with both sums. Pin is
// called again before each restart, so pinning a deliberately replaced
// binary takes effect without restarting the controller. go-plugin checks
// the file and then executes it by path: keep the plugin directory
// writable only by the operator.
//
// Status (what `weft status` shows per adapter): Pid, Running, Restarts;
// LastError and LastErrorAt, the plugin's own last failure (a crash, a
// refused configuration), kept after a recovery; and SourceError and
// SourceErrorAt, what the adapter reports while it cannot read its
// scheduler: the diagnostic its watch marks plugins.ReasonSourceFailing
// (plugins/sdk Loop's Failing), with the time a failure of that summary
// was first reported, cleared by the next snapshot without it. A
// diagnostic that names an instance (Diagnostic.Instance, sdk.Droppedf)
// becomes a model.Dropped in the forwarded snapshot, for the controller's
// list of dropped instances.
//
// What Supervise guarantees, after invariant 5 of the design: a plugin that
// crashes or whose Watch fails is restarted, and nothing is sent while it
// is down, so its last snapshot stays in force. A snapshot is forwarded
// only when the adapter sends one; an empty one means the adapter really
// knows of no instance. On shutdown (ctx done) the plugin is asked to stop
// gracefully, which lets an adapter that started processes stop them; if
// the controller dies instead, the plugin exits on its own and leaves them
// running (see plugins/sdk.Serve).
package host
