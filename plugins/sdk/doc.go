// Package sdk is what the author of a Weft adapter plugin imports. An
// adapter tells the controller where every instance of every service runs,
// as a full snapshot each time something changes; the controller turns the
// snapshots of all adapters, with the policy, into sidecar configurations.
//
// Entry point: Serve, called from the plugin's main. The types an adapter
// exchanges with the controller are aliases re-exported here (Adapter,
// InfoResponse, ConfigureRequest, WatchEvent, Snapshot, Instance, ...), so
// a third-party adapter imports this package alone.
//
// An adapter in 20 lines, reporting one fixed instance:
//
//	package main
//
//	import (
//		"context"
//
//		"github.com/weftmesh/weft/plugins/sdk"
//	)
//
//	type hello struct{}
//
//	func (hello) Info(context.Context) (*sdk.InfoResponse, error) {
//		return &sdk.InfoResponse{Name: "hello", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}, nil
//	}
//
//	func (hello) Configure(context.Context, *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
//		return &sdk.ConfigureResponse{}, nil
//	}
//
//	func (hello) Watch(ctx context.Context, _ *sdk.WatchRequest, events chan<- sdk.WatchEvent) error {
//		web := sdk.Instance{ID: "web-1", Service: "web", Address: "127.0.0.1",
//			Ports: map[string]int{sdk.PortApp: 8080, sdk.PortMesh: 21000}}
//		select {
//		case events <- sdk.WatchEvent{Snapshot: sdk.Snapshot{Instances: []sdk.Instance{web}}}:
//		case <-ctx.Done():
//		}
//		<-ctx.Done()
//		return nil
//	}
//
//	func main() { sdk.Serve(hello{}) }
//
// Build it as weft-adapter-hello into the controller's plugin directory
// (go build -o DIR/weft-adapter-hello .) and start the controller with
// --plugin-dir DIR --adapter hello=SOURCE. examples/adapter-file is a
// complete adapter with tests; adapters/conformance is the suite every
// adapter must pass.
//
// The contract, in short: Configure reports problems with the
// configuration as error diagnostics (not as a Go error). Watch sends a
// full snapshot on events whenever it changes, the first one as soon as it
// can; skips a malformed record and reports it as a warning diagnostic
// rather than failing the snapshot; selects on ctx.Done around every send;
// and returns when ctx is cancelled. Watch never closes events. Returning
// an error from Watch makes the controller restart the plugin with backoff,
// keeping the last snapshot in force meanwhile.
//
// Lifecycle of the process: see Serve. Log with Logger, never to standard
// output, which go-plugin owns.
package sdk
