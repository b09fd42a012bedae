package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/core/spiffe"
)

// DefaultLeafTTL is the lifetime of a sidecar certificate. Sidecars renew at
// half of it.
const DefaultLeafTTL = 24 * time.Hour

const (
	rootFile   = "ca.crt"
	keyFile    = "ca.key"
	secretFile = "join.secret"
	rootTTL    = 10 * 365 * 24 * time.Hour
	clockSkew  = time.Minute
)

// CA issues SPIFFE leaf certificates from one root.
type CA struct {
	root    *x509.Certificate
	key     crypto.Signer
	secret  []byte
	LeafTTL time.Duration
	now     func() time.Time
}

// LoadOrCreate loads the CA kept in dir, or creates a new root (and a join
// secret) there if the directory holds none. Controller replicas that share
// the directory (or a secret mounted into it) issue interchangeable
// certificates.
func LoadOrCreate(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating CA directory: %w", err)
	}
	c := &CA{LeafTTL: DefaultLeafTTL, now: time.Now}
	certPEM, err := os.ReadFile(filepath.Join(dir, rootFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := c.create(dir); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("reading CA root: %w", err)
	default:
		if err := c.load(dir, certPEM); err != nil {
			return nil, err
		}
	}
	secret, err := os.ReadFile(filepath.Join(dir, secretFile))
	if errors.Is(err, os.ErrNotExist) {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("generating join secret: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, secretFile), secret, 0o600); err != nil {
			return nil, fmt.Errorf("writing join secret: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading join secret: %w", err)
	}
	c.secret = secret
	return c, nil
}

func (c *CA) create(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Weft"}, CommonName: "Weft root CA " + now.UTC().Format("2006-01-02")},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(rootTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("creating CA root: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding CA key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("writing CA key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, rootFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("writing CA root: %w", err)
	}
	c.root, _ = x509.ParseCertificate(der)
	c.key = key
	return nil
}

func (c *CA) load(dir string, certPEM []byte) error {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return fmt.Errorf("reading CA root %s: no PEM certificate in it; remove the directory's ca.* files to start a new CA", filepath.Join(dir, rootFile))
	}
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("parsing CA root: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return fmt.Errorf("reading CA key: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return fmt.Errorf("reading CA key %s: no PEM block in it", filepath.Join(dir, keyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("parsing CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return errors.New("parsing CA key: not a signing key")
	}
	c.root, c.key = root, signer
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// Roots returns every root a peer must trust, as PEM.
func (c *CA) RootsPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.root.Raw})
}

// Pool returns the roots as a pool.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.root)
	return p
}

// JoinSecret is the secret adapter join keys derive from (DeriveJoinKey).
func (c *CA) JoinSecret() []byte { return c.secret }

// SignCSR issues a leaf certificate for id from a DER CSR. The CSR proves
// possession of the key; its subject and SANs are ignored: the identity is
// the one the caller established.
func (c *CA) SignCSR(csrDER []byte, id spiffe.Identity) (chainPEM []byte, notAfter time.Time, err error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("parsing CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, time.Time{}, fmt.Errorf("checking CSR signature: %w", err)
	}
	return c.issue(csr.PublicKey, id, nil, nil)
}

func (c *CA) issue(pub any, id spiffe.Identity, dns []string, ips []net.IP) ([]byte, time.Time, error) {
	now := c.now()
	notAfter := now.Add(c.LeafTTL)
	if notAfter.After(c.root.NotAfter) {
		notAfter = c.root.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Weft"}, CommonName: id.Service},
		URIs:         nil,
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	tmpl.URIs = append(tmpl.URIs, id.URL())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root, pub, c.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("signing certificate for %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), notAfter, nil
}

// ServerCertificate issues the controller's own serving certificate, for
// identity id and the given host names and IP addresses.
func (c *CA) ServerCertificate(id spiffe.Identity, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating server key: %w", err)
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	chain, _, err := c.issue(&key.PublicKey, id, dns, ips)
	if err != nil {
		return tls.Certificate{}, err
	}
	b, _ := pem.Decode(chain)
	leaf, _ := x509.ParseCertificate(b.Bytes)
	return tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: key, Leaf: leaf}, nil
}
