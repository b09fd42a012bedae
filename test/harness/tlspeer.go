package harness

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// PresentedChain dials a TLS server at addr (a sidecar's mesh port, say)
// and returns the certificate chain it presents, unverified: the caller
// checks it. A sidecar refuses us afterwards (we show no certificate),
// but with TLS 1.3 the server's certificate has reached us by then.
func PresentedChain(addr string) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // the caller checks the chain
		MinVersion:         tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			chain = cs.PeerCertificates
			return nil
		},
	})
	if conn != nil {
		conn.Close()
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("no certificate from %s: %v", addr, err)
	}
	return chain, nil
}

// ReadCertPEM reads the first certificate of a PEM file (a controller's
// CACert, the active root).
func ReadCertPEM(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block in " + path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate in %s: %w", path, err)
	}
	return c, nil
}
