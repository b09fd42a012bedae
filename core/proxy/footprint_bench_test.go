package proxy_test

import (
	"runtime"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
)

// BenchmarkProxyFootprint is what one more instance costs a process that
// serves several (the node proxy, docs/deployment-models.md) in its data
// plane alone: a Proxy with credentials, an HTTP inbound and one HTTP
// upstream listener, idle, without its controller client. Reported: Go
// heap and stacks in use per Proxy, after a GC, for 50 of them.
//
//	go test -run '^$' -bench BenchmarkProxyFootprint -benchtime 1x ./core/proxy/
func BenchmarkProxyFootprint(b *testing.B) {
	const n = 50
	ca := newCA(b)
	app := httpApp(b, false)
	inUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	for range b.N {
		before := inUse()
		for i := range n {
			p, _ := newProxy(b, ca, "api")
			cfg := serverConfig(app, meshapi.Protocol_PROTOCOL_HTTP, allowWeb())
			cfg.Upstreams = clientConfig(meshapi.Protocol_PROTOCOL_HTTP, apiID, app).Upstreams
			apply(b, p, uint64(i+1), cfg)
		}
		after := inUse()
		b.ReportMetric(float64(after-before)/n/1024, "KiB/proxy")
	}
}
