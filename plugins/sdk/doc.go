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
// complete adapter with tests; plugins/sdk/sdktest is the suite every
// adapter must pass, and the helpers its tests read a Watch with.
//
// Options: declare each option in InfoResponse.Options (an OptionSpec:
// name, type string/bool/int/duration/enum, default, description,
// required). The controller checks the operator's --adapter-option
// NAME.KEY=VALUE against the schema before Configure, and `weft adapter
// NAME --help` prints a built-in adapter's as a table. In Configure,
// ParseOptions reads them typed, with defaults, and lists the undeclared
// ones.
//
// Watching: Loop is the watch loop every built-in adapter runs, and the
// easiest way to write Watch: a change Signal, Debounce, Fetch (read the
// scheduler; a failure is retried with backoff, core/backoff, while the
// last snapshot stays in force), Translate (the adapter's pure
// translate(state) (Snapshot, []Diagnostic)), and a snapshot equal to the
// last one is not sent again. While Fetch fails, the Failing diagnostic
// goes with the last snapshot, marked ReasonSourceFailing: `weft status`
// shows it as the adapter's LAST ERROR, with its time, until a snapshot
// comes without it.
//
// Skipped records: report an instance the adapter leaves out with
// Droppedf(instance, reason, ...) (a Reason constant where one fits:
// ReasonNoMeshPort, ReasonNoServiceName, ...): the controller counts it per
// reason and names it in `weft status`. A plain Warningf is logged only.
//
// Join tokens: MintJoinToken mints, with MeshContext.JoinKey, the token a
// sidecar the adapter starts presents once. The SDK holds only the minting
// half of the format (jointoken.go); the controller's core/ca verifies,
// and the SDK's tests verify what it mints with core/ca. So the SDK, and
// an adapter, link nothing of the controller: plugins/sdk imports of core/
// only core/model (the types) and core/backoff (test/tools/check-deps.sh
// checks it).
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
