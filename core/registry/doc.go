// Package registry holds the latest full snapshot of every adapter and
// merges them into one view of the mesh's instances.
//
// Entry point: Registry.Update. An adapter's new snapshot replaces its
// previous one. Adapters send full snapshots; the plugin client numbers
// them (model.Snapshot.Seq) and, when one came as a delta on the wire,
// hands the delta on with it (model.Snapshot.Delta): when the registry
// holds the snapshot the delta starts from, it looks at the delta's
// records only, with the same result as taking the snapshot whole
// (TestDeltaMatchesWholeSnapshots), so one instance that changed costs
// work that grows with the change, not with the mesh. Records
// that fail model.Instance.Validate, or whose ID another record already
// holds, are skipped and reported as Problems with a Reason (core/model's
// DropReason: no service name, an unnamed port, no mesh port, a duplicate
// ID), which the controller lists in its status; they never poison the
// rest.
//
// Revisions: each record carries the registry revision at which it last
// changed (Entry.Rev). A record the adapter reports again unchanged keeps
// its revision; a new or different one gets the next. The incremental
// compiler (core/compile.Compiler) finds what a snapshot changed by
// comparing revisions, not records; ChangedSince names the records
// changed after a revision (a bounded journal), so that it need not even
// walk the entries (Compiler.UpdateChanged).
package registry
