// Package host is the controller's side of the adapter plugins: it finds a
// plugin binary, launches it with go-plugin (gRPC only, AutoMTLS),
// negotiates the protocol version, configures it, forwards its snapshots,
// and restarts it with backoff when it dies.
//
// Entry point: Supervise, one call per adapter, whose Updates feed the
// controller's registry. Find resolves a third-party adapter in the plugin
// directory (weft-adapter-<name>); built-in adapters run as `weft adapter
// <name>` through the same Supervise.
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
