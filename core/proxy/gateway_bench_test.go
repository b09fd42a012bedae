package proxy_test

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/spiffe"
)

// BenchmarkGatewayChain sends HTTP/1.1 requests over TLS from outside the
// mesh through an ingress gateway (its HTTPS listener, the route's
// outbound, mTLS) and the api sidecar's inbound to an app, one at a time
// on a keep-alive connection: the CPU and allocations of one gateway
// request, both proxies together. The inbound's engine follows
// WEFT_HTTP1_ENGINE. For profiles:
//
//	go test -run - -bench GatewayChain -benchmem -cpuprofile cpu.out ./core/proxy
func BenchmarkGatewayChain(b *testing.B) {
	ca := newCA(b)
	gwID := spiffe.ID(td, "default", "public")
	server, _ := newProxy(b, ca, "api")
	cfg := serverConfig(httpApp(b, false), meshapi.Protocol_PROTOCOL_HTTP,
		&meshapi.Authz{Rules: []*meshapi.AuthzRule{{Source: "public", Action: meshapi.Action_ACTION_ALLOW}}})
	cfg.Inbound.ForwardingCallers = []string{gwID}
	apply(b, server, 1, cfg)
	gw, _ := newProxy(b, ca, "public")
	host, port := splitAddr(server.Addr(proxy.KeyInbound))
	apply(b, gw, 1, &meshapi.ProxyConfig{
		InstanceId: "public-1", Service: "public", Namespace: "default", TrustDomain: td, SpiffeId: gwID,
		Gateway: &meshapi.Gateway{Name: "public", Listeners: []*meshapi.GatewayListener{{
			Name: "https", BindAddress: "127.0.0.1", Protocol: meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS,
			Tls: &meshapi.GatewayTLS{MeshCertificate: true},
			Routes: []*meshapi.GatewayRoute{{Name: "api", Upstream: &meshapi.Upstream{
				Name: "gateway/https/api", Service: "api", SpiffeId: apiID, Protocol: meshapi.Protocol_PROTOCOL_HTTP,
				Endpoints: []*meshapi.Endpoint{{InstanceId: "api-1", Address: host, Port: port}},
			}}},
		}}},
	})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}} // an outside client; the gateway's certificate is not the point
	defer c.CloseIdleConnections()
	getLoop(b, c, "https://"+gw.Addr(proxy.KeyGateway("https")).String()+"/bench")
}
