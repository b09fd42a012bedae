package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Defaults and names the CLI and the controller share.
const (
	// DefaultAddr is where the controller serves the admin API unless told
	// otherwise (its --admin).
	DefaultAddr = "https://127.0.0.1:7401"
	// EnvAddr, EnvToken and EnvCACert stand in for --admin, the token in
	// DATA_DIR/admin.token and --ca-cert when those are not given.
	EnvAddr   = "WEFT_ADDR"
	EnvToken  = "WEFT_TOKEN"
	EnvCACert = "WEFT_CACERT"
	// TokenFile is the admin token's file in the controller's data
	// directory; CAFile is the CA bundle's, in its "ca" directory.
	TokenFile = "admin.token"
	CAFile    = "ca.crt"
)

// Limits on what the client reads.
const (
	maxCABundle = 1 << 20  // a bundle of a few roots is a few KiB
	maxAnswer   = 32 << 20 // a status of many thousands of instances
	maxToken    = 4 << 10
)

// HowToTrust is the advice every trust error ends with.
const HowToTrust = "set WEFT_CACERT or --ca-cert to the mesh's CA bundle (`weft ca roots --pem` prints it; the controller keeps it in DATA_DIR/ca/ca.crt), or pass the controller's --data-dir"

// Config says which controller a Client asks and how it trusts it.
type Config struct {
	// Addr is https://HOST:PORT, or HOST:PORT, which means the same.
	Addr string
	// Token is the bearer token (DATA_DIR/admin.token).
	Token string
	// CACert is a PEM file of CA certificates that verifies the
	// controller's certificate, or a directory holding ca.crt (the
	// controller's DATA_DIR/ca).
	CACert string
	// Timeout bounds each request. Default 30s.
	Timeout time.Duration
}

// Client asks one controller's admin API.
type Client struct {
	base, token, caCert string
	hc                  *http.Client
}

// New checks cfg and reads the CA bundle. Nothing is sent yet.
func New(cfg Config) (*Client, error) {
	base, err := ParseAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, fmt.Errorf("asking the controller at %s: no admin token; set WEFT_TOKEN or pass the controller's --data-dir (the token is in DATA_DIR/admin.token)", base)
	}
	pool, file, err := LoadCA(cfg.CACert)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	// One connection per call: callers make a Client per command or poll,
	// and idle connections of discarded Clients would pile up on both
	// sides until their timeout.
	tr.DisableKeepAlives = true
	return &Client{
		base: base, token: strings.TrimSpace(cfg.Token), caCert: file,
		hc: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// The admin API never redirects; following one would carry the
			// token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// URL is the base URL the client asks, https://HOST:PORT.
func (c *Client) URL() string { return c.base }

// ParseAddr turns an admin address into the base URL of the API,
// https://HOST:PORT. HOST:PORT without a scheme means https. A plain
// http:// address is refused: the token would travel in clear.
func ParseAddr(addr string) (string, error) {
	s := strings.TrimSpace(addr)
	if s == "" {
		return "", fmt.Errorf("the controller's admin address is empty; want https://HOST:PORT, for example %s (--admin or WEFT_ADDR)", DefaultAddr)
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("parsing the controller's admin address %q: %w; want https://HOST:PORT", addr, err)
	}
	switch u.Scheme { // url.Parse lower-cases it
	case "https":
	case "http":
		return "", fmt.Errorf("the controller's admin address %q is plain http://: the admin API is served over TLS only, and the token must not cross the network in clear; use https://%s", addr, u.Host)
	default:
		return "", fmt.Errorf("the controller's admin address %q has the scheme %q; use https://HOST:PORT", addr, u.Scheme)
	}
	if u.User != nil {
		return "", fmt.Errorf("the controller's admin address %q carries a user or password; drop it and give the token with WEFT_TOKEN or the controller's --data-dir", redact(u))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("the controller's admin address %q has a path or query; want only https://HOST:PORT", addr)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("the controller's admin address %q needs a host and a port; want https://HOST:PORT, for example %s", addr, DefaultAddr)
	}
	return "https://" + u.Host, nil
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// LoadCA reads a PEM bundle of CA certificates from path, or from
// path/ca.crt when path is a directory (DATA_DIR/ca). It returns the pool
// and the file it read.
func LoadCA(path string) (*x509.CertPool, string, error) {
	if path == "" {
		return nil, "", fmt.Errorf("no CA bundle to verify the controller with; %s", HowToTrust)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, CAFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading the CA bundle that verifies the controller: %w; %s", err, HowToTrust)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCABundle+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading the CA bundle %s: %w; %s", path, err, HowToTrust)
	}
	if len(b) > maxCABundle {
		return nil, "", fmt.Errorf("the CA bundle %s is larger than %d bytes, too large for a bundle of roots; %s", path, maxCABundle, HowToTrust)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, "", fmt.Errorf("the CA bundle %s holds no PEM certificate; %s", path, HowToTrust)
	}
	return pool, path, nil
}

// ReadToken reads the admin token from the controller's data directory.
func ReadToken(dataDir string) (string, error) {
	p := filepath.Join(dataDir, TokenFile)
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("reading the admin token: %w (pass the controller's --data-dir, or set WEFT_TOKEN)", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxToken+1))
	if err != nil {
		return "", fmt.Errorf("reading the admin token %s: %w", p, err)
	}
	if len(b) > maxToken {
		return "", fmt.Errorf("reading the admin token: %s is larger than %d bytes; it is not a token the controller wrote", p, maxToken)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("reading the admin token: %s is empty; delete it and restart the controller to get a new one", p)
	}
	return tok, nil
}

// StatusError is an answer other than 200 OK.
type StatusError struct {
	Method, URL string
	Code        int
	Status      string // "401 Unauthorized"
	Message     string // the body, trimmed
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("asking the controller at %s (%s): %s", e.URL, e.Method, e.Status)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Call sends method path (a JSON body when in is not nil) and decodes the
// JSON answer into out (when not nil). An answer other than 200 is a
// *StatusError; a failure on the way says what to do about it.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request to %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("asking the controller at %s: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("reading the controller's answer to %s %s: %w", method, path, err)
	}
	if len(b) > maxAnswer {
		return fmt.Errorf("reading the controller's answer to %s %s: larger than %d bytes", method, path, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 4096 {
			msg = msg[:4096] + "..."
		}
		return &StatusError{Method: method, URL: c.base + path, Code: resp.StatusCode, Status: resp.Status, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the controller's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// explain turns a failed request into a sentence that says what to do.
func (c *Client) explain(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("the controller at %s presented a certificate that the CA bundle %s does not verify (%v): it is not this mesh's controller, or the bundle is not this mesh's; %s", c.base, c.caCert, unknown, HowToTrust)
	case errors.As(err, &host):
		return fmt.Errorf("the controller at %s presented a certificate for other names (%v): dial it by one of the names it holds, or restart the controller with --server-name %s", c.base, host, hostOf(c.base))
	case errors.As(err, &invalid):
		return fmt.Errorf("the controller at %s presented a certificate that is not valid (%v): check both clocks; the controller renews its certificate by itself, a restart issues a new one", c.base, invalid)
	case errors.As(err, &rec), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("the controller at %s does not speak TLS (%v): it is older than this weft (upgrade it) or this is not its admin address", c.base, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("asking the controller at %s: nothing listens there (is it running? pass its admin address with --admin or WEFT_ADDR): %w", c.base, err)
	}
	return fmt.Errorf("asking the controller at %s: %w (is it running? pass its admin address with --admin or WEFT_ADDR)", c.base, err)
}

func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	return u.Hostname()
}
