package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/weftmesh/weft/core/spiffe"
)

// DefaultLeafTTL is the lifetime of a sidecar certificate. Sidecars renew at
// half of it.
const DefaultLeafTTL = 24 * time.Hour

const (
	rootFile     = "ca.crt"
	keyFile      = "ca.key"
	secretFile   = "join.secret"
	rotationFile = "rotation.json"
	nextSuffix   = ".next"
	rootTTL      = 10 * 365 * 24 * time.Hour
	clockSkew    = time.Minute
)

// CA issues SPIFFE leaf certificates from its active root. After a
// rotation it also keeps the roots it signed with before, each until no
// leaf it signed can still be valid (see Rotate).
type CA struct {
	dir     string
	secret  []byte
	LeafTTL time.Duration
	now     func() time.Time

	mu       sync.RWMutex
	root     *x509.Certificate // the active root
	key      crypto.Signer     // its key
	previous []previousRoot    // older roots still trusted, oldest first
	// commit, when set (SetCommit), makes Rotate and Retire go through
	// the replicated state instead of the directory (replicated.go).
	commit func(base string, next State) error
}

func (c *CA) committer() func(string, State) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.commit
}

// previousRoot is a root that signed leaves before a rotation.
type previousRoot struct {
	cert *x509.Certificate
	// cross is the root that replaced this one, signed by this one, so
	// that a peer trusting only this root verifies the new root's leaves.
	cross    *x509.Certificate
	retireAt time.Time
}

// LoadOrCreate loads the CA kept in dir, or creates a new root (and a join
// secret) there if the directory holds none. Controller replicas that share
// the directory (or a secret mounted into it) issue interchangeable
// certificates.
//
// The directory holds ca.crt and ca.key (the active root and its key),
// join.secret, and after a rotation rotation.json (the previous roots still
// trusted, with their cross-signatures and retirement times).
func LoadOrCreate(dir string) (*CA, error) {
	return load(dir, time.Now)
}

func load(dir string, now func() time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating CA directory: %w", err)
	}
	c := &CA{dir: dir, LeafTTL: DefaultLeafTTL, now: now}
	if err := c.finishRotation(); err != nil {
		return nil, err
	}
	certPEM, err := readFile(filepath.Join(dir, rootFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(filepath.Join(dir, rotationFile)); err == nil {
			return nil, fmt.Errorf("reading CA root: %s is missing but %s is there: restore ca.crt and ca.key from a backup (creating a new root would cut off every sidecar)",
				filepath.Join(dir, rootFile), filepath.Join(dir, rotationFile))
		}
		if err := c.create(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("reading CA root: %w", err)
	default:
		if err := c.load(certPEM); err != nil {
			return nil, err
		}
		if err := c.loadRotation(); err != nil {
			return nil, err
		}
	}
	secret, err := readFile(filepath.Join(dir, secretFile))
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

// newRoot generates a root key and a self-signed root certificate. Its
// subject names its ID, so that two roots never share a subject.
func newRoot(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	skid, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{Organization: []string{"Weft"},
			CommonName: "Weft root CA " + now.UTC().Format("2006-01-02") + " " + hex.EncodeToString(skid[:4])},
		SubjectKeyId:          skid,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(rootTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the new CA root: %w", err)
	}
	return cert, key, nil
}

// keyID is the subject key ID of a new root: the first 20 bytes of the
// SHA-256 of its public key.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding CA public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// RootID names a root: its subject key ID in hex (or, for a root without
// one, a hash of its public key). It is spiffe.RootID, kept here for the
// CA's callers; the sidecar uses spiffe.RootID and does not link the CA.
func RootID(root *x509.Certificate) string { return spiffe.RootID(root) }

func (c *CA) create() error {
	root, key, err := newRoot(c.now())
	if err != nil {
		return err
	}
	if err := writeRootPair(c.dir, "", root, key); err != nil {
		return err
	}
	c.root, c.key = root, key
	return nil
}

// writeRootPair writes a root and its key as ca.crt and ca.key (plus
// suffix), key first, each atomically.
func writeRootPair(dir, suffix string, root *x509.Certificate, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding CA key: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, keyFile+suffix), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("writing CA key: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, rootFile+suffix), pemCert(root), 0o644); err != nil {
		return fmt.Errorf("writing CA root: %w", err)
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func (c *CA) load(certPEM []byte) error {
	rootPath, keyPath := filepath.Join(c.dir, rootFile), filepath.Join(c.dir, keyFile)
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return fmt.Errorf("reading CA root %s: no PEM certificate in it; restore it from a backup, or remove the directory's ca.* and rotation.json files to start a new CA (every sidecar must then join again)", rootPath)
	}
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("parsing CA root %s: %w", rootPath, err)
	}
	if !root.IsCA {
		return fmt.Errorf("reading CA root %s: the certificate is not a CA (basic constraints CA:FALSE)", rootPath)
	}
	keyPEM, err := readFile(keyPath)
	if err != nil {
		return fmt.Errorf("reading CA key: %w (ca.crt is there without its key: restore ca.key from a backup)", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return fmt.Errorf("reading CA key %s: no PEM block in it; restore it from a backup", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("parsing CA key %s: %w (want a PKCS #8 \"PRIVATE KEY\")", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return fmt.Errorf("parsing CA key %s: not a signing key", keyPath)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(root.PublicKey) {
		return fmt.Errorf("loading the CA: %s is not the key of %s; restore the pair from a backup (both files must come from the same root)", keyPath, rootPath)
	}
	c.root, c.key = root, signer
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// RootsPEM returns every root a peer must trust, as PEM: the active root
// first, then the previous ones still trusted, newest first.
func (c *CA) RootsPEM() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := pemCert(c.root)
	for i := len(c.previous) - 1; i >= 0; i-- {
		out = append(out, pemCert(c.previous[i].cert)...)
	}
	return out
}

// Pool returns the roots as a pool.
func (c *CA) Pool() *x509.CertPool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p := x509.NewCertPool()
	p.AddCert(c.root)
	for _, pr := range c.previous {
		p.AddCert(pr.cert)
	}
	return p
}

// ActiveRootID is the ID (RootID) of the root that signs new leaves.
func (c *CA) ActiveRootID() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return RootID(c.root)
}

// JoinSecret is the secret adapter join keys derive from (DeriveJoinKey).
func (c *CA) JoinSecret() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.secret
}

// SignCSR issues a leaf certificate for id from a DER CSR. The CSR proves
// possession of the key; its subject and SANs are ignored: the identity is
// the one the caller established. The chain is the leaf, then the active
// root cross-signed by each previous root still trusted (newest first), so
// that a peer that trusts only an older root verifies it too.
func (c *CA) SignCSR(csrDER []byte, id spiffe.Identity) (chainPEM []byte, notAfter time.Time, err error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("parsing CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, time.Time{}, fmt.Errorf("checking CSR signature: %w", err)
	}
	chain, notAfter, err := c.issue(csr.PublicKey, id, nil, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	var out []byte
	for _, der := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out, notAfter, nil
}

func (c *CA) issue(pub any, id spiffe.Identity, dns []string, ips []net.IP) ([][]byte, time.Time, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.now()
	notAfter := now.Add(c.LeafTTL)
	if notAfter.After(c.root.NotAfter) {
		notAfter = c.root.NotAfter
	}
	der, err := SignLeaf(c.root, c.key, pub, id, Leaf{NotBefore: now.Add(-clockSkew), NotAfter: notAfter, DNSNames: dns, IPs: ips})
	if err != nil {
		return nil, time.Time{}, err
	}
	chain := [][]byte{der}
	for i := len(c.previous) - 1; i >= 0; i-- {
		chain = append(chain, c.previous[i].cross.Raw)
	}
	return chain, notAfter, nil
}

// Leaf is the validity and extra names of a leaf certificate.
type Leaf struct {
	NotBefore, NotAfter time.Time
	// DNSNames and IPs are added as SANs (a controller's server certificate).
	DNSNames []string
	IPs      []net.IP
}

// SignLeaf signs a leaf certificate for id and the public key pub with
// parent and its key, and returns it in DER. It is the one leaf template of
// the mesh: the CA issues every sidecar's and controller's certificate with
// it, and test CAs (core/proxy/proxytest) sign theirs with it too.
func SignLeaf(parent *x509.Certificate, key crypto.Signer, pub any, id spiffe.Identity, l Leaf) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Weft"}, CommonName: id.Service},
		URIs:         []*url.URL{id.URL()},
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w", id, err)
	}
	return der, nil
}

// ServerCertificate issues the controller's own serving certificate, for
// identity id and the given host names and IP addresses, with the same
// chain as a sidecar's.
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
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing server certificate: %w", err)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}
