package spiffe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Identity is a parsed Weft SPIFFE ID.
type Identity struct {
	TrustDomain string
	Namespace   string
	Service     string
}

// String formats the identity as a SPIFFE ID URI.
func (id Identity) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/svc/" + id.Service
}

// URL returns the identity as a URL, for a certificate's URI SAN.
func (id Identity) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/svc/" + id.Service}
}

// ID formats a SPIFFE ID from its parts.
func ID(trustDomain, namespace, service string) string {
	return Identity{trustDomain, namespace, service}.String()
}

// Parse parses a Weft SPIFFE ID.
func Parse(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("parsing SPIFFE ID %q: %w", s, err)
	}
	return fromURL(u)
}

func fromURL(u *url.URL) (Identity, error) {
	if u.Scheme != "spiffe" || u.Host == "" {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: want spiffe://<trust-domain>/ns/<namespace>/svc/<service>", u.String())
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "svc" || parts[1] == "" || parts[3] == "" {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: want spiffe://<trust-domain>/ns/<namespace>/svc/<service>", u.String())
	}
	return Identity{TrustDomain: u.Host, Namespace: parts[1], Service: parts[3]}, nil
}

// FromCert returns the identity in a certificate's single SPIFFE URI SAN.
func FromCert(c *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range c.URIs {
		if u.Scheme != "spiffe" {
			continue
		}
		id, err := fromURL(u)
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, errors.New("certificate has no SPIFFE ID in its URI SANs")
	case 1:
		return found[0], nil
	default:
		return Identity{}, errors.New("certificate has more than one SPIFFE ID")
	}
}

// VerifyPeer verifies a peer's raw certificate chain (leaf first) against
// roots at time now, for client or server use, and returns the peer's
// identity. The identity's trust domain must be trustDomain.
func VerifyPeer(rawCerts [][]byte, roots *x509.CertPool, trustDomain string, now time.Time) (Identity, error) {
	if len(rawCerts) == 0 {
		return Identity{}, errors.New("peer presented no certificate")
	}
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return Identity{}, fmt.Errorf("parsing peer certificate: %w", err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return Identity{}, fmt.Errorf("verifying peer certificate: %w", err)
	}
	id, err := FromCert(certs[0])
	if err != nil {
		return Identity{}, err
	}
	if id.TrustDomain != trustDomain {
		return Identity{}, fmt.Errorf("peer identity %s is not in trust domain %q", id, trustDomain)
	}
	return id, nil
}
