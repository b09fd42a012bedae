// Package plugins is the adapter plugin protocol: the Adapter interface, its
// request and response types, the go-plugin handshake, and the gRPC shims
// that carry the interface across the process boundary.
//
// Entry point: Adapter. Plugin authors import plugins/sdk; the controller
// uses plugins/host to launch, verify, supervise and restart plugins.
//
// Files: adapter.go is the interface and its types; options.go the option
// schema an adapter declares in Info (OptionSpec) and CheckOptions, which
// the host runs on the operator's values; plugin.go the handshake,
// the versioned plugin map (GRPCAdapterPlugin) and the host's client
// configuration; grpc_client.go the host-side shim (an Adapter over
// plugins/proto), grpc_server.go the plugin-side shim (proto.AdapterServer
// over an Adapter), convert.go the conversions between the two, delta.go
// the snapshot deltas Watch sends on the wire.
//
// Conventions the shims keep:
//   - Watch converts between a Go channel and a gRPC stream in both
//     directions. Neither side closes the caller's channel. When the
//     stream breaks, the adapter's ctx is cancelled and its sends drained
//     until its Watch returns.
//   - Problems with a configuration travel in-band as diagnostics; an error
//     an adapter returns from Configure becomes an error diagnostic. Info
//     and Watch errors, and transport failures, are Go errors on the host
//     side. A cancelled call returns ctx.Err().
//   - Protocol versions are negotiated by go-plugin (VersionedPlugins); a
//     plugin of another version fails Dispense with ErrIncompatibleVersion,
//     and CheckInfo checks the version the adapter reports again.
//   - Snapshot.Adapter does not cross the wire: the host sets it from the
//     name the adapter was configured under.
//   - Every WatchEvent is a whole snapshot on both sides of the shims. On
//     the wire, a host that asks for them (WatchRequest.accepts_deltas;
//     GRPCClient always does) gets the first snapshot whole and then only
//     what changed: the instances added or changed and the IDs gone, with
//     the count to check. The client shim rebuilds the whole snapshot.
//     Plugins and hosts built before deltas still work with either side.
package plugins
