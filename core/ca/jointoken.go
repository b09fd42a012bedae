package ca

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// A join token lets a sidecar the adapter started prove which instance it
// serves, once. It is minted by the adapter with a key the controller gave
// it (DeriveJoinKey) and checked by the controller (JoinVerifier), which also
// requires the instance to be in the adapter's snapshot with that service.
//
// Format: "wj1." base64url(JSON claims) "." base64url(HMAC-SHA256).

const joinTokenPrefix = "wj1."

// JoinClaims is what a join token asserts.
type JoinClaims struct {
	Adapter   string `json:"a"`
	Instance  string `json:"i"`
	Service   string `json:"s"`
	Namespace string `json:"n"`
	Expires   int64  `json:"e"`
	Nonce     string `json:"r"`
}

// DeriveJoinKey derives the key one adapter mints join tokens with from the
// controller's secret, so a key handed to one adapter mints nothing for
// another.
func DeriveJoinKey(secret []byte, adapter string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("weft join key\x00" + adapter))
	return m.Sum(nil)
}

// MintJoinToken mints a single-use token for one instance, valid for ttl.
func MintJoinToken(key []byte, c JoinClaims, ttl time.Duration) (string, error) {
	if len(key) < 16 {
		return "", errors.New("minting join token: key shorter than 16 bytes")
	}
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("minting join token: %w", err)
	}
	c.Nonce = hex.EncodeToString(nonce[:])
	c.Expires = time.Now().Add(ttl).Unix()
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("minting join token: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(body)
	return joinTokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(sign(key, p)), nil
}

func sign(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(joinTokenPrefix + payload))
	return m.Sum(nil)
}

// JoinVerifier checks join tokens and remembers spent ones until they expire.
type JoinVerifier struct {
	secret []byte
	now    func() time.Time

	mu    sync.Mutex
	spent map[string]int64 // nonce -> expiry
}

// NewJoinVerifier returns a verifier for tokens minted with keys derived
// from secret.
func NewJoinVerifier(secret []byte) *JoinVerifier {
	return &JoinVerifier{secret: secret, now: time.Now, spent: map[string]int64{}}
}

// Verify checks a token's signature and expiry and spends it. A token is
// accepted once.
func (v *JoinVerifier) Verify(token string) (JoinClaims, error) {
	return v.VerifyAnd(token, nil)
}

// VerifyAnd checks a token like Verify, then calls accept (if not nil) with
// its claims, and spends the token only if accept returns nil, so a token
// presented too early (before its instance is known) can be presented again.
func (v *JoinVerifier) VerifyAnd(token string, accept func(JoinClaims) error) (JoinClaims, error) {
	c, err := v.check(token)
	if err != nil {
		return JoinClaims{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now().Unix()
	for n, exp := range v.spent {
		if exp < now {
			delete(v.spent, n)
		}
	}
	if _, ok := v.spent[c.Nonce]; ok {
		return JoinClaims{}, errors.New("join token already used: each token admits one sidecar once; restart the instance to get a new one")
	}
	if accept != nil {
		if err := accept(c); err != nil {
			return JoinClaims{}, err
		}
	}
	v.spent[c.Nonce] = c.Expires
	return c, nil
}

func (v *JoinVerifier) check(token string) (JoinClaims, error) {
	rest, ok := strings.CutPrefix(token, joinTokenPrefix)
	if !ok {
		return JoinClaims{}, errors.New("not a Weft join token (want prefix wj1.)")
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return JoinClaims{}, errors.New("malformed join token: no signature")
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return JoinClaims{}, fmt.Errorf("decoding join token: %w", err)
	}
	var c JoinClaims
	if err := json.Unmarshal(body, &c); err != nil {
		return JoinClaims{}, fmt.Errorf("decoding join token: %w", err)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return JoinClaims{}, fmt.Errorf("decoding join token signature: %w", err)
	}
	if !hmac.Equal(got, sign(DeriveJoinKey(v.secret, c.Adapter), payload)) {
		return JoinClaims{}, errors.New("join token signature does not verify: it was not minted by an adapter of this controller")
	}
	if v.now().Unix() > c.Expires {
		return JoinClaims{}, fmt.Errorf("join token for instance %s expired at %s", c.Instance, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}
