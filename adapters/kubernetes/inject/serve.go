package inject

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// CertFiles is the webhook's serving certificate, read from a PEM pair
// and read again when either file changes: a Secret volume that
// cert-manager (or an operator's script) renews is swapped in place by
// the kubelet, and the next TLS handshake presents the new certificate
// without a restart. A pair that does not load keeps the last good one
// in service (and says why in Err).
type CertFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	stamp   string
	current *tls.Certificate
	err     error
}

// LoadCertFiles reads the pair once; it must load.
func LoadCertFiles(certFile, keyFile string, log *slog.Logger) (*CertFiles, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &CertFiles{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := c.stampNow()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the webhook's serving certificate %s and key %s: %w", certFile, keyFile, err)
	}
	c.stamp, c.current = stamp, &cert
	return c, nil
}

// stampNow identifies the files' current versions: the file each path
// resolves to (a Secret volume's paths are symlinks into a directory the
// kubelet replaces), its size and modification time.
func (c *CertFiles) stampNow() (string, error) {
	var out string
	for _, f := range []string{c.certFile, c.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("reading the webhook's serving certificate: %w", err)
		}
		var ino uint64
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			ino = sys.Ino
		}
		out += fmt.Sprintf("%d:%d:%d;", ino, st.Size(), st.ModTime().UnixNano())
	}
	return out, nil
}

// GetCertificate is a tls.Config's GetCertificate: the current pair, read
// again first when a file changed.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.stampNow()
	if err == nil && stamp != c.stamp {
		var cert tls.Certificate
		cert, err = tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err == nil {
			c.stamp, c.current, c.err = stamp, &cert, nil
			c.log.Info("injector: serving the renewed certificate", "cert", c.certFile)
			return c.current, nil
		}
		err = fmt.Errorf("loading the renewed serving certificate %s: %w; still serving the last good one", c.certFile, err)
	}
	if err != nil && (c.err == nil || c.err.Error() != err.Error()) {
		c.log.Warn("injector: " + err.Error())
	}
	c.err = err
	return c.current, nil
}

// Err says why the files on disk are not the certificate in service, nil
// when they are.
func (c *CertFiles) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ServeOptions are what Serve needs.
type ServeOptions struct {
	Options
	// CertFile and KeyFile are the serving certificate's PEM files (see
	// CertFiles).
	CertFile, KeyFile string
	Logger            *slog.Logger
}

// HealthPath answers 200 while the webhook serves (its probes' path).
const HealthPath = "/healthz"

// Serve runs the webhook on lis over HTTPS until ctx ends: AdmissionReview
// requests on any path (the MutatingWebhookConfiguration names /mutate),
// and GET /healthz for the kubelet's probes.
func Serve(ctx context.Context, lis net.Listener, o ServeOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.CertFile == "" || o.KeyFile == "" {
		return errors.New("no serving certificate: give --tls-cert and --tls-key; the API server calls webhooks over HTTPS only")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	certs, err := LoadCertFiles(o.CertFile, o.KeyFile, o.Logger)
	if err != nil {
		return err
	}
	review := Handler(o.Options)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == HealthPath {
				w.WriteHeader(http.StatusOK)
				return
			}
			review.ServeHTTP(w, r)
		}),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	o.Logger.Info("injector: serving", "addr", lis.Addr().String(), "proxy_image", o.ProxyImage, "controller", o.Controller)
	err = srv.ServeTLS(lis, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return fmt.Errorf("serving the webhook: %w", err)
}
