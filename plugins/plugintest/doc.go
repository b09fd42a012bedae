// Package plugintest tests adapters through the real plugin gRPC shims
// without starting a process.
//
// Entry point: GRPC, which wraps an Adapter in the server shim, connects the
// client shim to it in memory and returns the client. An adapter that passes
// its tests through GRPC behaves the same behind go-plugin.
package plugintest
