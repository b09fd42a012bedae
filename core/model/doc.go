// Package model is Weft's scheduler-agnostic workload model: the typed
// snapshot an adapter reports of every service instance it knows.
//
// Entry point: Snapshot. Data flows one way: an adapter (adapters/*, over the
// plugin protocol in plugins/) builds a full Snapshot, the controller's
// registry (core/registry) keeps the latest one per adapter and merges them,
// and the compiler (core/compile) turns the merged view plus policy into one
// proxy configuration per instance.
//
// The package has no dependencies beyond the standard library so that plugin
// authors can link it (through plugins/sdk) at no cost.
package model
