package control

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/creds"
)

func newKeyAndCSR() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a key: %w", err)
	}
	// No subject: the controller sets the SPIFFE ID from what it verified.
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating a CSR: %w", err)
	}
	return key, csr, nil
}

// credentialsFrom pairs the controller's answer with the key of the CSR.
func credentialsFrom(resp *meshapi.Credentials, key *ecdsa.PrivateKey) (*creds.Credentials, error) {
	var cert tls.Certificate
	for rest := resp.GetCertChainPem(); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("reading the controller's answer: no certificate in cert_chain_pem")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("reading the controller's answer: %w", err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("reading the controller's answer: the certificate is not for the key of our CSR")
	}
	cert.Leaf, cert.PrivateKey = leaf, key
	cr, err := creds.New(cert, resp.GetRootsPem())
	if err != nil {
		return nil, err
	}
	if want := resp.GetSpiffeId(); want != "" && cr.ID.String() != want {
		return nil, fmt.Errorf("reading the controller's answer: the certificate names %s but the answer says %s", cr.ID, want)
	}
	return cr, nil
}
