// Package spiffe formats, parses and verifies Weft's SPIFFE identities,
// spiffe://<trust-domain>/ns/<namespace>/svc/<service>, and checks X.509
// chains against a set of roots the way both the controller and the sidecar
// need it, and names roots (RootID) for both. Entry points: ID, Parse,
// VerifyPeer, RootID.
package spiffe
