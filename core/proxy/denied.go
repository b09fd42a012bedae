package proxy

import (
	"net/http"
)

// HeaderDenied marks a refusal a callee's sidecar wrote itself (403 of
// authorization, 401 of a permission's end-user token, and their gRPC
// forms). Its body names mesh identities and the intention that decided,
// which helps a mesh caller's developers; an ingress gateway must not
// hand that to a client outside the mesh, so it replaces the body (and a
// gRPC message) of a marked response with a generic one
// (gatewayWriter). The inbound removes the header from every
// application response, so an app cannot have its own body replaced.
const HeaderDenied = "X-Weft-Denied"

// markDenied marks the sidecar's own refusal, before it is written.
func markDenied(w http.ResponseWriter) { w.Header().Set(HeaderDenied, "1") }

// gatewayWriter is the response writer of a gateway request: a response
// marked HeaderDenied reaches the outside client with its status and
// challenge headers but a generic body.
type gatewayWriter struct {
	http.ResponseWriter
	scrubbed bool // the body was replaced: the upstream's is dropped
}

func (g *gatewayWriter) WriteHeader(code int) {
	h := g.Header()
	if h.Get(HeaderDenied) == "" || g.scrubbed {
		g.ResponseWriter.WriteHeader(code)
		return
	}
	h.Del(HeaderDenied)
	msg := "weft gateway: access denied"
	if code == http.StatusUnauthorized || h.Get("Grpc-Status") == "16" {
		msg = "weft gateway: authentication required"
	}
	if h.Get("Grpc-Status") != "" { // trailers-only gRPC refusal: no body
		h.Set("Grpc-Message", grpcPercentEncode(msg))
		g.ResponseWriter.WriteHeader(code)
		return
	}
	g.scrubbed = true
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	g.ResponseWriter.WriteHeader(code)
	g.ResponseWriter.Write([]byte(msg + "\n"))
}

func (g *gatewayWriter) Write(p []byte) (int, error) {
	if g.scrubbed {
		return len(p), nil
	}
	return g.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// WebSocket hijacks).
func (g *gatewayWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }
