// Package jwks is the controller's side of end-user JWT authentication:
// it reads the keys of every `jwt_provider` (jwks_file from disk, jwks_url
// over HTTPS, or plain HTTP on loopback) and inlines them in the policy
// the controller compiles (policy.JWTProvider.JWKS), so that every sidecar
// gets its providers' keys in its configuration (meshapi.JwtProvider.jwks)
// and checks tokens itself (core/proxy/jwtauth).
//
// Why the controller fetches, as Istio's istiod does: a sidecar never
// calls the identity provider (a thousand sidecars would be a thousand
// clients of it, each needing egress to it and its CA), the keys a mesh
// uses are the same everywhere at once, and a sidecar cut off from the
// controller keeps its last keys with its last configuration. The cost:
// keys travel in configuration (a key set is bounded to
// jwtauth.MaxJWKSBytes and MaxKeys), and a rotation reaches the sidecars
// within the provider's jwks_refresh (default 5m) plus one configuration
// push, so an identity provider must publish a new key that long before
// it signs with it, as they do (they publish the next key ahead).
//
// Caching: the last good key set of each source stays in force when a
// read fails or returns an invalid set (logged, retried with backoff up
// to the refresh interval); URLs are fetched with If-None-Match when the
// server gave an ETag.
//
// Entry point: New, then Resolver.Run between the policy watcher and
// the controller (cmd/weft/controller.go).
package jwks
