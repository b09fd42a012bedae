// Package fasthttpeval measures valyala/fasthttp as the sidecar's
// HTTP/1.1 forwarder beside core/proxy/h1, on the same micro-benchmark
// (BENCHMARKS.md, "The byte-level HTTP/1.1 engine"). It is a module of its
// own so that the sidecar's module does not depend on fasthttp:
//
//	cd core/proxy/h1/fasthttpeval && go test -run - -bench . -benchmem
//
// Entry points: BenchmarkFastHTTPProxy, BenchmarkH1Forwarder.
package fasthttpeval
