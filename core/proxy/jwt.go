package proxy

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/core/proxy/jwtauth"
)

// End-user authentication (core/proxy/jwtauth) on the inbound path:
// serveHTTP calls checkJWT after the request is canonical and before
// authorization, which then reads the valid tokens' claims
// (authz.Rules.AuthorizeRequestJWT). A gateway's request path calls
// checkJWT the same way, with its own Verifier (jwtauth.New on its
// configuration) and realm.

// jwtMetrics count end-user tokens by provider: refused ones by reason
// (the intrusion signals of issue 16 read weft_jwt_failures_total), and
// valid ones.
type jwtMetrics struct {
	failures *prometheus.CounterVec
	valid    *prometheus.CounterVec
}

func newJWTMetrics(reg *prometheus.Registry) jwtMetrics {
	m := jwtMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_jwt_failures_total",
			Help: "Inbound requests refused with 401 for their end-user token, by JWT provider and reason: missing, malformed, too_large, algorithm, unknown_key, signature, expired, not_yet_valid, issuer, audience.",
		}, []string{"provider", "reason"}),
		valid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_jwt_valid_total",
			Help: "Inbound requests whose end-user token of the JWT provider was valid.",
		}, []string{"provider"}),
	}
	reg.MustRegister(m.failures, m.valid)
	return m
}

// checkJWT authenticates r's end user with v (nil: nothing to check) for
// the service realm. When a token is refused, or a required one missing,
// it answers 401 itself and returns why (refused != ""); otherwise it has
// removed spoofed claim headers, set the valid tokens' claims as headers
// and removed the tokens not forwarded (jwtauth.Verifier.Forward), and
// returns the tokens for authorization.
func (p *Proxy) checkJWT(w http.ResponseWriter, r *http.Request, v *jwtauth.Verifier, realm string) (res jwtauth.Result, refused string) {
	if v == nil {
		return res, ""
	}
	res = v.Authenticate(r, time.Now())
	if res.Failure != nil {
		return res, p.unauthenticated(w, r, realm, res.Failure)
	}
	for name := range res.Claims {
		p.metrics.jwt.valid.WithLabelValues(name).Inc()
	}
	v.Forward(r, res)
	return res, ""
}

// unauthenticated answers 401 (gRPC UNAUTHENTICATED) with the challenge
// of RFC 6750, counts the failure and returns the message.
func (p *Proxy) unauthenticated(w http.ResponseWriter, r *http.Request, realm string, f *jwtauth.Failure) string {
	p.metrics.jwt.failures.WithLabelValues(f.Provider, f.Reason).Inc()
	msg := f.Error()
	w.Header().Set("WWW-Authenticate", jwtauth.Challenge(realm, f))
	if isGRPC(r) {
		writeGRPCError(w, grpcUnauthenticated, msg)
		return msg
	}
	http.Error(w, msg, http.StatusUnauthorized)
	return msg
}
