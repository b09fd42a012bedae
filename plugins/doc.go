// Package plugins is the adapter plugin protocol: the Adapter interface, its
// request and response types, the go-plugin handshake, and the gRPC shims
// that carry the interface across the process boundary.
//
// Entry point: Adapter. Plugin authors import plugins/sdk; the controller
// uses plugins/host to launch, verify, supervise and restart plugins.
package plugins
