// Package conformance is the test suite every Weft adapter passes, built in
// or third party, both in process and as a real go-plugin process.
//
// Entry point: Run. An adapter's test calls it with a way to open the
// adapter (InMemory, through the real gRPC shims without a process, or
// OverPlugin, launching the plugin binary the way the controller does) and
// a Fixture: a good and a bad configuration, the instance IDs the good one
// yields, and optionally a change to the adapter's source:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.InMemory(newAdapter), fixture)
//	}
//
// What it checks: Info names the adapter and reports plugins.ProtocolVersion;
// a bad configuration is answered with an error diagnostic (not a transport
// error); under the good one, Watch sends a first snapshot within 20
// seconds with exactly the wanted IDs, every instance valid
// (model.Instance.Validate) and no ID twice; after Change, a full snapshot
// with the new IDs follows; cancelling Watch's ctx makes it return (nil or
// context.Canceled) within 10 seconds.
package conformance
