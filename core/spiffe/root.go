package spiffe

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

// RootID names a root: its subject key ID in hex (or, for a root without
// one, a hash of its public key). A leaf's authority key ID names the root
// that signed it the same way. The CA (core/ca) names its roots with it and
// the sidecar names the root of its own certificate with it, so both sides
// of a rotation agree on a root's name without the sidecar linking the CA.
func RootID(root *x509.Certificate) string {
	if len(root.SubjectKeyId) > 0 {
		return hex.EncodeToString(root.SubjectKeyId)
	}
	sum := sha256.Sum256(root.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:20])
}
