// Package jwtauth is the sidecar's end-user authentication: it verifies
// the JSON Web Tokens of HTTP requests against the JWT providers of its
// configuration (meshapi.JwtProvider, compiled from `jwt_provider` blocks by
// core/compile, with the provider's keys inlined by the controller, which
// reads jwks_file and fetches jwks_url: core/jwks). A sidecar therefore
// never calls the identity provider itself, and a key rotation reaches it
// as a new configuration, applied without a restart.
//
// Entry points: New (a Verifier for a configuration; nil when it names no
// provider), Verifier.Authenticate (the token of each provider: 401 when
// one is present and invalid, or a required one is missing),
// Verifier.Forward (claims to headers, spoofed ones removed, the token
// removed unless forwarded), Challenge (the WWW-Authenticate value),
// ParseKeySet (the controller checks key sets with it too).
//
// The inbound listener (core/proxy inbound.go, checkJWT) calls them in
// that order, then core/proxy/authz with the valid tokens' claims for the
// permissions that match on them (403 when claims do not allow, 401 when
// an allowing permission needed a token the request lacks). A gateway
// calls the same checkJWT step on its own requests.
//
// What is refused, before anything is decoded: a token over MaxTokenBytes,
// a key set over MaxJWKSBytes or MaxKeys, JSON nested deeper than
// MaxClaimsDepth; then any algorithm but RS*, PS*, ES256/384/512 and EdDSA
// (never "none", never HS*: a public key is never an HMAC secret, and
// shared-secret providers are not supported), symmetric keys in a key set,
// RSA keys under 2048 bits, a token whose iss is not its provider's, a
// missing or past exp, an nbf ahead (both within the provider's clock
// skew), an aud naming none of the provider's audiences (when it has any),
// a header or claims naming a member twice, an iat or nbf that is not a
// number, two different tokens for one provider (in its header, query
// parameter and cookie, under any spelling an application could read).
// typ is not checked, iat only for its type; jku, x5u and embedded keys
// are never used. docs/edge-threats.md lists the attacks tried and why.
// Verification uses github.com/go-jose/go-jose/v4.
package jwtauth
