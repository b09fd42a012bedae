// Command weft-adapter-file is a minimal third-party Weft adapter: it
// reports the service instances listed in a JSON file, and reports them
// again whenever the file changes. It is the "hello world" for plugin
// authors; README.md walks through writing, building and loading it.
//
// Entry point: main, which only calls sdk.Serve. The adapter is in
// adapter.go (its option schema, Configure with sdk.ParseOptions, Watch on
// sdk.Loop; a file is read again only when its stat says it may have
// changed), the file format and its parser in records.go. What makes a
// large file cheap to read again is apart, and a plugin author may skip
// it: split.go finds the records in one pass, window.go reads only the
// stretch of the file that changed.
//
// It imports github.com/weftmesh/weft/plugins/sdk and nothing else of Weft
// (its tests plugins/sdk/sdktest, and plugins/host to supervise it).
package main
