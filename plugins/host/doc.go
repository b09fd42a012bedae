// Package host is the controller's side of the adapter plugins: it finds a
// plugin binary, verifies its SHA-256 and launches it with go-plugin (gRPC
// only, AutoMTLS), negotiates the protocol version, configures it, forwards
// its snapshots, and restarts it with backoff when it dies.
//
// Entry point: Supervise, one call per adapter, whose Updates feed the
// controller's registry. Find resolves a third-party adapter in the plugin
// directory (weft-adapter-<name>); built-in adapters run as `weft adapter
// <name>` through the same Supervise.
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
// What Supervise guarantees, after invariant 5 of the design: a plugin that
// crashes or whose Watch fails is restarted, and nothing is sent while it
// is down, so its last snapshot stays in force. A snapshot is forwarded
// only when the adapter sends one; an empty one means the adapter really
// knows of no instance. On shutdown (ctx done) the plugin is asked to stop
// gracefully, which lets an adapter that started processes stop them; if
// the controller dies instead, the plugin exits on its own and leaves them
// running (see plugins/sdk.Serve).
package host
