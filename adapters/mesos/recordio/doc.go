// Package recordio reads and writes Mesos RecordIO framing: each record is
// its length in decimal ASCII, a line feed, then exactly that many bytes.
// The master's SUBSCRIBE responses (operator and scheduler APIs) are
// streams of such records.
//
// Entry points: NewReader (the adapter and the example framework read
// event streams with it) and NewWriter (the simulator in test/mesossim
// writes them). A Reader never hangs on a bad stream and never allocates
// more than its limit: a malformed length, a record over the limit, or a
// stream cut inside a record each end reading with an error that says so.
package recordio
