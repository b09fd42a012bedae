// Package jwttest is a test identity provider for end-user JWT tests: an
// issuer with ECDSA, RSA or Ed25519 keys made in the test, its key set
// (JWKS) to serve or write, key rotation, and the tokens an attacker would
// send (alg none, HS256 keyed with the public key, tampered payloads and
// signatures). It is never linked by weft-proxy.
//
// Entry points: New, Issuer.Sign, Issuer.SignRaw, Issuer.JWKS,
// Issuer.Rotate, Issuer.Kid, Claims, None, HS256WithPublicKey,
// TamperPayload, TamperSignature.
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a test identity provider. It is safe for concurrent use (a
// test's JWKS server reads it while the test rotates).
type Issuer struct {
	Issuer string

	mu   sync.Mutex
	keys []*key // the newest signs
	n    int
}

type key struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// New returns an issuer named iss with one key of alg (ES256, ES384,
// RS256, PS256, EdDSA...).
func New(t testing.TB, iss string, alg jose.SignatureAlgorithm) *Issuer {
	t.Helper()
	i := &Issuer{Issuer: iss}
	i.Rotate(t, alg, false)
	return i
}

// Rotate adds a new key of alg, which signs from now on; with drop, the
// older keys leave the key set. It returns the new key's kid.
func (i *Issuer) Rotate(t testing.TB, alg jose.SignatureAlgorithm, drop bool) string {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("jwttest: no key for algorithm %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.n++
	k := &key{kid: fmt.Sprintf("key-%d", i.n), alg: alg, priv: priv}
	if drop {
		i.keys = nil
	}
	i.keys = append(i.keys, k)
	return k.kid
}

// JWKS is the issuer's key set: the public keys, newest last.
func (i *Issuer) JWKS(t testing.TB) []byte {
	t.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, k := range i.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Claims are the usual claims of a valid token: iss, sub, aud, iat, exp
// an hour ahead; extra are added (or replace them).
func (i *Issuer) Claims(sub string, aud any, extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": i.Issuer, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if aud != nil {
		c["aud"] = aud
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign signs claims with the newest key.
func (i *Issuer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	i.mu.Lock()
	k := i.keys[len(i.keys)-1]
	i.mu.Unlock()
	return signWith(t, k, claims)
}

func signWith(t testing.TB, k *key, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), k.kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// None is an unsigned token (alg "none"): RFC 7519's unsecured JWT.
func None(claims map[string]any) string {
	return b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(claims) + "."
}

// HS256WithPublicKey is the key-confusion attack: a token signed with
// HMAC-SHA256 keyed with the issuer's newest public key (its PEM, as a
// naive verifier would take it), naming that key's kid.
func (i *Issuer) HS256WithPublicKey(t testing.TB, claims map[string]any) string {
	t.Helper()
	i.mu.Lock()
	k := i.keys[len(i.keys)-1]
	i.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	signing := b64(map[string]string{"alg": "HS256", "typ": "JWT", "kid": k.kid}) + "." + b64(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// TamperPayload replaces tok's claims with claims, keeping its header and
// signature.
func TamperPayload(tok string, claims map[string]any) string {
	parts := strings.SplitN(tok, ".", 3)
	return parts[0] + "." + b64(claims) + "." + parts[2]
}

// TamperSignature flips a bit of tok's signature.
func TamperSignature(tok string) string {
	parts := strings.SplitN(tok, ".", 3)
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 0x01
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Kid is the kid of the issuer's newest key.
func (i *Issuer) Kid() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1].kid
}

// SignRaw signs header and payload exactly as given (JSON text, however
// hostile: duplicate names, odd types, extra header parameters) with the
// newest key, which must be ES256, ES384, RS256 or EdDSA: the tokens a
// careless or compromised issuer could produce, which no JOSE library
// would write.
func (i *Issuer) SignRaw(t testing.TB, header, payload string) string {
	t.Helper()
	i.mu.Lock()
	k := i.keys[len(i.keys)-1]
	i.mu.Unlock()
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	var sig []byte
	var err error
	switch k.alg {
	case jose.ES256, jose.ES384:
		var digest []byte
		size := 32
		if k.alg == jose.ES256 {
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		} else {
			d := sha512.Sum384([]byte(input))
			digest, size = d[:], 48
		}
		r, s, e := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), digest)
		err = e
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	case jose.RS256:
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, d[:])
	case jose.EdDSA:
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	default:
		t.Fatalf("jwttest: SignRaw does not sign %s", k.alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
