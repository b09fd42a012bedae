// Package spiffe formats, parses and verifies Weft's SPIFFE identities,
// spiffe://<trust-domain>/ns/<namespace>/svc/<service>, and checks X.509
// chains against a set of roots the way both the controller and the sidecar
// need it. Entry points: ID, Parse, VerifyPeer.
package spiffe
