// Package sdktest is what an adapter's tests import: the conformance suite
// every Weft adapter passes, built in or third party, and the helpers that
// configure an adapter and read its Watch. It imports nothing of the
// controller (core/ but core/model), like plugins/sdk.
//
// Entry points: Run, the suite, and Watch, a running Watch to read.
//
// Run takes a way to open the adapter (InMemory, through the real gRPC
// shims without a process, or OverPlugin, launching the plugin binary the
// way the controller does) and a Fixture: a good and a bad configuration,
// the instance IDs the good one yields, and optionally a change to the
// adapter's source:
//
//	func TestConformance(t *testing.T) {
//		sdktest.Run(t, sdktest.InMemory(newAdapter), fixture)
//	}
//
// What it checks: Info names the adapter, reports plugins.ProtocolVersion
// and declares options it can mean; a bad configuration is answered with
// an error diagnostic (not a transport error); under the good one, Watch
// sends a first snapshot within SnapshotTimeout with exactly the wanted
// IDs, every instance valid (model.Instance.Validate) and no ID twice;
// after Change, a full snapshot with the new IDs follows; cancelling
// Watch's ctx makes it return (nil or context.Canceled) within
// CancelTimeout.
//
// The helpers, for an adapter's own tests: Configure and ConfigureOK call
// Configure (bounded, a transport error fails the test); Watch starts
// Watch and stops it at cleanup, checking that it returns; its Next,
// NextBefore and WaitFor read snapshots with bounded waits; FirstEvent is
// the first snapshot of a Watch.
package sdktest
