package proxy

import (
	"crypto/tls"

	"github.com/weftmesh/weft/core/proxy/creds"
)

// Credentials are what the proxy presents to its peers and what it trusts
// (package creds).
type Credentials = creds.Credentials

// NewCredentials is creds.New: credentials from a certificate and its key,
// and roots in PEM.
func NewCredentials(cert tls.Certificate, rootsPEM []byte) (*Credentials, error) {
	return creds.New(cert, rootsPEM)
}

// ParseCredentials is creds.Parse: credentials from PEM.
func ParseCredentials(chainPEM, keyPEM, rootsPEM []byte) (*Credentials, error) {
	return creds.Parse(chainPEM, keyPEM, rootsPEM)
}
