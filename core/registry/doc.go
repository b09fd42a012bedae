// Package registry holds the latest full snapshot of every adapter and
// merges them into one view of the mesh's instances.
//
// Entry point: Registry.Update. An adapter's new snapshot replaces its
// previous one whole (adapters send full snapshots, never deltas). Records
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
// comparing revisions, not records.
package registry
