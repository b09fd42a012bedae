package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/spiffe"
)

func csr(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func leafDER(t *testing.T, chain []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(chain)
	if b == nil {
		t.Fatal("no PEM in chain")
	}
	return b.Bytes
}

func TestIssueAndVerify(t *testing.T) {
	c, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := spiffe.Identity{TrustDomain: "weft.local", Namespace: "default", Service: "api"}
	chain, notAfter, err := c.SignCSR(csr(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(notAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("leaf lifetime = %v, want about 24h", d)
	}
	got, err := spiffe.VerifyPeer([][]byte{leafDER(t, chain)}, c.Pool(), "weft.local", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Errorf("identity = %v, want %v", got, id)
	}
	if _, err := spiffe.VerifyPeer([][]byte{leafDER(t, chain)}, c.Pool(), "other.domain", time.Now()); err == nil {
		t.Error("a certificate from another trust domain verified")
	}
	if _, err := spiffe.VerifyPeer([][]byte{leafDER(t, chain)}, c.Pool(), "weft.local", notAfter.Add(time.Hour)); err == nil {
		t.Error("an expired certificate verified")
	}
	other, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spiffe.VerifyPeer([][]byte{leafDER(t, chain)}, other.Pool(), "weft.local", time.Now()); err == nil {
		t.Error("a certificate from another CA verified")
	}
}

func TestLoadKeepsRootAndSecret(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.RootsPEM()) != string(b.RootsPEM()) || string(a.JoinSecret()) != string(b.JoinSecret()) {
		t.Error("reloading the CA directory changed the root or the join secret")
	}
	id := spiffe.Identity{TrustDomain: "weft.local", Namespace: "default", Service: "api"}
	chain, _, err := b.SignCSR(csr(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spiffe.VerifyPeer([][]byte{leafDER(t, chain)}, a.Pool(), "weft.local", time.Now()); err != nil {
		t.Errorf("a certificate from the reloaded CA does not verify against the first: %v", err)
	}
}

func TestSignCSRRejectsGarbage(t *testing.T) {
	c, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.SignCSR([]byte("not a csr"), spiffe.Identity{TrustDomain: "t", Namespace: "n", Service: "s"}); err == nil {
		t.Error("garbage CSR was signed")
	}
}

func TestJoinTokens(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	key := DeriveJoinKey(secret, "local")
	claims := JoinClaims{Adapter: "local", Instance: "api-0", Service: "api", Namespace: "default"}
	good, err := MintJoinToken(key, claims, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wrongAdapter, _ := MintJoinToken(DeriveJoinKey(secret, "nomad"), claims, time.Minute)
	expired, _ := MintJoinToken(key, claims, -time.Minute)
	otherSecret, _ := MintJoinToken(DeriveJoinKey([]byte("another secret, sixteen+ bytes!!"), "local"), claims, time.Minute)

	v := NewJoinVerifier(secret)
	got, err := v.Verify(good)
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	if got.Instance != "api-0" || got.Service != "api" || got.Adapter != "local" {
		t.Errorf("claims = %+v", got)
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"reused", good, "already used"},
		{"minted with another adapter's key", wrongAdapter, "does not verify"},
		{"minted by another controller", otherSecret, "does not verify"},
		{"expired", expired, "expired"},
		{"not a token", "hello", "not a Weft join token"},
		{"tampered", good[:len(good)-3] + "AAA", "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(tc.token)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestVerifyAndSpendsOnlyWhenAccepted(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok, err := MintJoinToken(DeriveJoinKey(secret, "local"), JoinClaims{Adapter: "local", Instance: "api-0", Service: "api"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v := NewJoinVerifier(secret)
	notYet := errors.New("instance not known yet")
	if _, err := v.VerifyAnd(tok, func(JoinClaims) error { return notYet }); !errors.Is(err, notYet) {
		t.Fatalf("VerifyAnd error = %v, want %v", err, notYet)
	}
	if _, err := v.VerifyAnd(tok, func(JoinClaims) error { return nil }); err != nil {
		t.Fatalf("token refused after a rejected first try: %v", err)
	}
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("token accepted twice")
	}
}
