package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/core/inputlimit"
)

// certCheckEvery is how often, at most, a gateway listener looks at its
// certificate files again: on a handshake, once this long has passed
// since the last look. A renewed certificate (cert-manager, Vault agent,
// certbot writing new files or swapping a symlink) is served from the
// first handshake after that, with no restart and no policy change.
const certCheckEvery = time.Second

// fileCert is an HTTPS gateway listener's certificate from its cert_file
// and key_file. It is loaded whole when the configuration arrives (a
// listener whose files cannot be read is refused, so the configuration is
// NACKed), and looked at again on handshakes: when either file's size,
// modification time or inode changed, the pair is loaded again. A pair
// that does not load (a half-written file, a key that does not match)
// never replaces the one being served: it is counted and logged, and
// tried again at the next change.
type fileCert struct {
	listener          string
	certPath, keyPath string
	m                 gatewayCertMetrics
	log               *slog.Logger

	cur       atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // unix nanoseconds

	mu    sync.Mutex // one reload at a time
	stamp [2]fileStamp
}

// fileStamp is what says a file changed without reading it.
type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}, nil
}

// loadKeyPair reads and parses a PEM certificate chain and its key,
// each at most 1 MiB; certName and keyName name them in errors ("tls
// cert_file", "client key").
func loadKeyPair(certPath, keyPath, certName, keyName string) (*tls.Certificate, error) {
	certPEM, err := inputlimit.ReadFile(certPath, maxCertFileBytes)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", certName, err)
	}
	keyPEM, err := inputlimit.ReadFile(keyPath, maxCertFileBytes)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", keyName, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading %s %s and %s %s: %w; give a PEM certificate chain and its PEM private key", certName, certPath, keyName, keyPath, err)
	}
	return &cert, nil
}

// maxCertFileBytes bounds each certificate or key file the proxy reads.
const maxCertFileBytes = 1 << 20

// loadCertPair loads a gateway listener's pair.
func loadCertPair(certPath, keyPath string) (*tls.Certificate, error) {
	return loadKeyPair(certPath, keyPath, "tls cert_file", "tls key_file")
}

// newFileCert loads the pair once. The files are stamped before they are
// read, so that a change racing the read is seen at the next look.
func newFileCert(listener, certPath, keyPath string) (*fileCert, error) {
	f := &fileCert{listener: listener, certPath: certPath, keyPath: keyPath}
	f.stamp[0], _ = stampOf(certPath)
	f.stamp[1], _ = stampOf(keyPath)
	cert, err := loadCertPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	f.cur.Store(cert)
	f.nextCheck.Store(time.Now().Add(certCheckEvery).UnixNano())
	return f, nil
}

// start gives the certificate its metrics and log, once its listener
// serves it.
func (f *fileCert) start(m gatewayCertMetrics, log *slog.Logger) {
	f.m, f.log = m, log
	f.m.observe(f.listener, f.cur.Load())
}

// get is the listener's tls.Config.GetCertificate.
func (f *fileCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if now := time.Now().UnixNano(); now >= f.nextCheck.Load() {
		f.check(now)
	}
	return f.cur.Load(), nil
}

// check loads the pair again if a file changed. Handshakes that arrive
// while one of them reloads serve the current pair without waiting.
func (f *fileCert) check(now int64) {
	if !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	f.nextCheck.Store(now + int64(certCheckEvery))
	// A file that cannot be stat'ed stamps as zero: counted as an error
	// once, when it goes missing, not at every look.
	cs, _ := stampOf(f.certPath)
	ks, _ := stampOf(f.keyPath)
	if cs == f.stamp[0] && ks == f.stamp[1] {
		return
	}
	f.stamp = [2]fileStamp{cs, ks}
	cert, err := loadCertPair(f.certPath, f.keyPath)
	if err == nil {
		err = checkLeaf(cert)
	}
	if err != nil {
		f.m.reloads.WithLabelValues(f.listener, "error").Inc()
		if f.log != nil {
			f.log.Warn("gateway certificate files changed but do not load; still serving the previous certificate", "listener", f.listener, "err", err)
		}
		return
	}
	f.cur.Store(cert)
	f.m.reloads.WithLabelValues(f.listener, "loaded").Inc()
	f.m.observe(f.listener, cert)
	if f.log != nil {
		f.log.Info("gateway certificate reloaded from its files", "listener", f.listener, "not_after", cert.Leaf.NotAfter)
	}
}

// checkLeaf refuses a renewed certificate that is already expired: the
// one served now may still be valid, and a renewal that went wrong should
// not take the listener down with it.
func checkLeaf(cert *tls.Certificate) error {
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("parsing the certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	if time.Now().After(leaf.NotAfter) {
		return fmt.Errorf("the new certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// gatewayCertMetrics say when a gateway's certificate files were loaded
// and when the certificate served expires.
type gatewayCertMetrics struct {
	reloads *prometheus.CounterVec
	expiry  *prometheus.GaugeVec
}

func newGatewayCertMetrics(reg *prometheus.Registry) gatewayCertMetrics {
	m := gatewayCertMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_certificate_reloads_total",
			Help: "Times an HTTPS gateway listener's cert_file or key_file changed on disk, by listener and result: loaded (served from the next handshake) or error (the previous certificate is still served).",
		}, []string{"listener", "result"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_gateway_certificate_expiry_timestamp_seconds",
			Help: "When the certificate an HTTPS gateway listener serves from its files expires (Unix time).",
		}, []string{"listener"}),
	}
	reg.MustRegister(m.reloads, m.expiry)
	return m
}

func (m gatewayCertMetrics) observe(listener string, cert *tls.Certificate) {
	if m.expiry == nil || cert == nil {
		return
	}
	if err := checkLeaf(cert); err != nil && cert.Leaf == nil {
		return
	}
	m.expiry.WithLabelValues(listener).Set(float64(cert.Leaf.NotAfter.Unix()))
}
