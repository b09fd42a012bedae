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
	// Node, in a node token (nodetoken.go), names the node whose proxy
	// the token admits; Instance and Service are empty then.
	Node string `json:"nd,omitempty"`
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

// JoinVerifier checks join tokens and, through a SpentStore, spends each
// once.
type JoinVerifier struct {
	secret []byte
	now    func() time.Time
	spent  SpentStore
}

// NewJoinVerifier returns a verifier for tokens minted with keys derived
// from secret that remembers spent tokens in memory only: after a restart
// they are valid again until they expire. For tests and tools; a
// controller uses NewJoinVerifierWith and a SpentFile.
func NewJoinVerifier(secret []byte) *JoinVerifier {
	return NewJoinVerifierWith(secret, NewMemorySpentStore())
}

// NewJoinVerifierWith returns a verifier for tokens minted with keys
// derived from secret that records spent tokens in spent.
func NewJoinVerifierWith(secret []byte, spent SpentStore) *JoinVerifier {
	return &JoinVerifier{secret: secret, now: time.Now, spent: spent}
}

// errTokenUsed is the error for a token presented again.
var errTokenUsed = errors.New("join token already used: each token admits one sidecar once; restart the instance to get a new one")

// Verify checks a token's signature and expiry and spends it. A token is
// accepted once.
func (v *JoinVerifier) Verify(token string) (JoinClaims, error) {
	return v.VerifyAnd(token, nil)
}

// VerifyAnd checks a token like Verify, then calls accept (if not nil) with
// its claims, and spends the token only if accept returns nil, so a join
// that fails for any reason (its instance is not known yet, its CSR is
// garbage) leaves the token to be presented again. accept should do every
// check and all the work of the join; the token is spent after it, at
// once: of concurrent calls with one token whose accept succeeds, exactly
// one gets nil, and the others get an error saying the token was used.
// An error recording the spend wraps ErrSpend.
func (v *JoinVerifier) VerifyAnd(token string, accept func(JoinClaims) error) (JoinClaims, error) {
	c, err := v.check(token)
	if err != nil {
		return JoinClaims{}, err
	}
	if v.spent.Spent(c.Nonce) {
		return JoinClaims{}, errTokenUsed
	}
	if accept != nil {
		if err := accept(c); err != nil {
			return JoinClaims{}, err
		}
	}
	ok, err := v.spent.Spend(c.Nonce, time.Unix(c.Expires, 0))
	if err != nil {
		return JoinClaims{}, err
	}
	if !ok {
		return JoinClaims{}, errTokenUsed
	}
	return c, nil
}

// MaxJoinToken bounds a join or node token, checked before it is
// decoded: the claims of a real one are a few hundred bytes.
const MaxJoinToken = 4096

func (v *JoinVerifier) check(token string) (JoinClaims, error) {
	if len(token) > MaxJoinToken {
		return JoinClaims{}, fmt.Errorf("a join token of %d bytes, over the limit of %d: it was not minted by an adapter of this controller", len(token), MaxJoinToken)
	}
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
	if !validSpentID(c.Nonce) {
		return JoinClaims{}, errors.New("malformed join token: its nonce is missing or malformed")
	}
	if v.now().Unix() > c.Expires {
		what := "join token for instance " + c.Instance
		if c.IsNodeToken() {
			what = "node token for node " + c.Node
		}
		return JoinClaims{}, fmt.Errorf("%s expired at %s: the adapter mints a new one when the proxy restarts", what, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}
