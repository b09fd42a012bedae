// Package registry holds the latest full snapshot of every adapter and
// merges them into one view of the mesh's instances.
//
// Entry point: Registry.Update. An adapter's new snapshot replaces its
// previous one whole (adapters send full snapshots, never deltas). Records
// that fail model.Instance.Validate, or whose ID another record already
// holds, are skipped and reported; they never poison the rest.
package registry
