package kubetest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/weftmesh/weft/test/harness"
)

// Bounds on the control plane's start and stop.
const (
	etcdReadyTimeout      = 30 * time.Second
	apiserverReadyTimeout = 90 * time.Second
	stopTimeout           = 30 * time.Second
)

// Issuer is the service-account token issuer the API server is started with.
const Issuer = "https://kubernetes.default.svc.cluster.local"

// Users the API server's token file knows.
const (
	AdminUser  = "weft-admin"  // in system:masters: may do anything
	NobodyUser = "weft-nobody" // authenticated, granted nothing by RBAC
)

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	t      testing.TB
	dir    string
	assets string

	Host        string // https://127.0.0.1:PORT
	CAPEM       []byte // verifies the API server's serving certificate
	AdminToken  string
	NobodyToken string
	signingKey  *rsa.PrivateKey
	Admin       kubernetes.Interface

	etcdURL   string
	etcdTmpfs string
	apiPort   int
	etcd      *harness.Process
	apiserver *harness.Process
}

// Start runs etcd and kube-apiserver on loopback and waits until the API
// server is ready. Both are stopped at test cleanup.
func Start(t testing.TB) *Cluster {
	t.Helper()
	assets, err := Assets()
	if err != nil {
		t.Fatalf("the Kubernetes tests need kube-apiserver and etcd: %v", err)
	}
	c := &Cluster{t: t, dir: t.TempDir(), assets: assets, AdminToken: randomToken(t), NobodyToken: randomToken(t)}
	t.Cleanup(c.removeTmpfs)
	c.startEtcd()
	c.writeFiles()
	c.apiPort = harness.FreePort(t)
	c.Host = "https://127.0.0.1:" + strconv.Itoa(c.apiPort)
	c.StartAPIServer()
	cfg := c.RestConfig(c.AdminToken)
	c.Admin, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RestConfig returns a client configuration for the API server with a
// bearer token.
func (c *Cluster) RestConfig(token string) *rest.Config {
	// The test plays several controllers at once: no client-side rate
	// limit (client-go's default of 5 requests a second would dominate
	// every timing).
	return &rest.Config{Host: c.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM}, Timeout: 10 * time.Second, QPS: 1000, Burst: 1000}
}

// Kubeconfig writes a kubeconfig file for the API server with a bearer
// token and returns its path.
func (c *Cluster) Kubeconfig(name, token string) string {
	return c.kubeconfigFor(name, c.Host, token)
}

func (c *Cluster) kubeconfigFor(name, server, token string) string {
	path := filepath.Join(c.dir, "kubeconfig-"+name)
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: %s}
current-context: test
`, server, base64.StdEncoding.EncodeToString(c.CAPEM), name, token, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// UnreachableKubeconfig writes a kubeconfig pointing at a loopback port
// where nothing listens.
func (c *Cluster) UnreachableKubeconfig() string {
	return c.kubeconfigFor("nowhere", "https://127.0.0.1:"+strconv.Itoa(harness.FreePort(c.t)), c.AdminToken)
}

// ExpiredServiceAccountToken returns a token of service account ns/name,
// signed with the cluster's own issuer key but expired an hour ago.
func (c *Cluster) ExpiredServiceAccountToken(ns, name string) string {
	now := time.Now()
	claims := map[string]any{
		"iss": Issuer, "aud": []string{Issuer},
		"sub": "system:serviceaccount:" + ns + ":" + name,
		"iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		"kubernetes.io": map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": name, "uid": "00000000-0000-0000-0000-000000000000"}},
	}
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.signingKey, crypto.SHA256, sum[:])
	if err != nil {
		c.t.Fatal(err)
	}
	return signed + "." + enc.EncodeToString(sig)
}

// Namespace creates a namespace and the service accounts named (plus
// "default", which pods need before the ServiceAccount admission plugin
// admits them).
func (c *Cluster) Namespace(name string, serviceAccounts ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		c.t.Fatalf("creating namespace %s: %v", name, err)
	}
	for _, sa := range append([]string{"default"}, serviceAccounts...) {
		_, err := c.Admin.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			c.t.Fatalf("creating service account %s/%s: %v", name, sa, err)
		}
	}
}

// PodToken requests a token of the pod's service account, bound to the pod
// and for audience, as the kubelet does for a projected token volume.
func (c *Cluster) PodToken(pod *corev1.Pod, audience string, ttl time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	secs := int64(ttl / time.Second)
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tr, err := c.Admin.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			Audiences:         []string{audience},
			ExpirationSeconds: &secs,
			BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: types.UID(pod.UID)},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token of %s/%s for pod %s: %w", pod.Namespace, sa, pod.Name, err)
	}
	return tr.Status.Token, nil
}

// ServiceAccountToken requests an unbound token of a service account.
func (c *Cluster) ServiceAccountToken(ns, sa, audience string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	secs := int64(3600)
	tr, err := c.Admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &secs},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token of %s/%s: %w", ns, sa, err)
	}
	return tr.Status.Token, nil
}

func (c *Cluster) startEtcd() {
	client, peer := harness.FreePort(c.t), harness.FreePort(c.t)
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	c.etcd = c.run("etcd", filepath.Join(c.assets, "etcd"),
		"--name", "weft-test",
		"--data-dir", c.etcdDataDir(),
		"--listen-client-urls", c.etcdURL, "--advertise-client-urls", c.etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "weft-test="+peerURL,
		"--log-level", "warn")
	c.waitHTTP(c.etcd, c.etcdURL+"/health", nil, etcdReadyTimeout)
}

// etcdDataDir is on tmpfs (/dev/shm) when there is one: etcd syncs every
// write to disk, which on a busy shared disk makes each API write cost
// hundreds of milliseconds; tests need no durability beyond the process.
func (c *Cluster) etcdDataDir() string {
	if dir, err := os.MkdirTemp("/dev/shm", "weft-etcd-"); err == nil {
		c.etcdTmpfs = dir // removed by stopAll, after etcd exits
		return dir
	}
	return filepath.Join(c.dir, "etcd")
}

// writeFiles writes the serving certificate, the token file and the
// service-account keys.
func (c *Cluster) writeFiles() {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		c.t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		c.t.Fatal(err)
	}
	srvKeyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	c.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	c.write("serving.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}))
	c.write("serving.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: srvKeyDER}))

	c.signingKey, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(c.signingKey)}))
	c.write("tokens.csv", []byte(fmt.Sprintf("%s,%s,uid-admin,\"system:masters\"\n%s,%s,uid-nobody\n",
		c.AdminToken, AdminUser, c.NobodyToken, NobodyUser)))
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer, on the
// same port and etcd) and waits until it is ready.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	c.apiserver = c.run("kube-apiserver", filepath.Join(c.assets, "kube-apiserver"),
		"--etcd-servers", c.etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--endpoint-reconciler-type", "none",
		"--secure-port", strconv.Itoa(c.apiPort),
		"--cert-dir", filepath.Join(c.dir, "certs"),
		"--tls-cert-file", filepath.Join(c.dir, "serving.crt"),
		"--tls-private-key-file", filepath.Join(c.dir, "serving.key"),
		"--token-auth-file", filepath.Join(c.dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", Issuer,
		"--service-account-key-file", filepath.Join(c.dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(c.dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--storage-media-type", "application/json",
		"--v", "1")
	c.waitHTTP(c.apiserver, c.Host+"/readyz", c.CAPEM, apiserverReadyTimeout)
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after a bound)
// and waits until it has exited.
func (c *Cluster) StopAPIServer() {
	c.t.Helper()
	c.apiserver.Stop()
}

// removeTmpfs removes etcd's data directory on tmpfs. Registered as a
// cleanup before etcd starts, it runs after etcd (and kube-apiserver,
// started later) have stopped.
func (c *Cluster) removeTmpfs() {
	if c.etcdTmpfs != "" {
		os.RemoveAll(c.etcdTmpfs)
	}
}

// processOptions: each control-plane process runs in a process group of
// its own (killed with the test binary), has stopTimeout after SIGTERM,
// and a failed test logs its last 40 lines.
var processOptions = harness.Options{Group: true, Grace: stopTimeout, LogTail: 40}

// run starts one control-plane process, stopped at the test's cleanup
// (the last started first).
func (c *Cluster) run(name, bin string, args ...string) *harness.Process {
	c.t.Helper()
	return harness.Start(c.t, name, exec.Command(bin, args...), processOptions)
}

// waitHTTP polls url until it answers 200, the process exits, or timeout.
func (c *Cluster) waitHTTP(p *harness.Process, url string, caPEM []byte, timeout time.Duration) {
	c.t.Helper()
	tr := &http.Transport{}
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited():
			c.t.Fatalf("%s exited while starting; its log:\n%s", p.Name, harness.Tail(p.Out.String(), 60))
		case <-tick.C:
		}
		req, _ := http.NewRequest("GET", url, nil)
		if caPEM != nil {
			req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		last = resp.Status
	}
	c.t.Fatalf("%s not ready at %s within %v (last: %s); its log:\n%s", p.Name, url, timeout, last, harness.Tail(p.Out.String(), 60))
}

func (c *Cluster) write(name string, b []byte) {
	if err := os.WriteFile(filepath.Join(c.dir, name), b, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func randomToken(t testing.TB) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
