package ca

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// A node token admits the node proxy of one node (docs/deployment-models.md):
// the adapter that runs the node mints it, like a join token, with its
// claims naming the node (JoinClaims.Node) and no instance. The node proxy
// presents it once for each instance it serves, and the controller admits
// each join only for an instance its scheduler placed on that node. Each
// (token, instance) pair is spent once, so a copied token cannot admit an
// instance twice; within its lifetime it admits the node's instances that
// it has not admitted yet, which is what the node's proxy holds anyway.

// IsNodeToken reports whether c are a node token's claims.
func (c JoinClaims) IsNodeToken() bool { return c.Node != "" && c.Instance == "" }

// MintNodeToken mints a node token for node, valid for ttl, with the key
// of the adapter that placed the node's instances.
func MintNodeToken(key []byte, adapter, node string, ttl time.Duration) (string, error) {
	if node == "" {
		return "", errors.New("minting node token: no node name")
	}
	return MintJoinToken(key, JoinClaims{Adapter: adapter, Node: node}, ttl)
}

// An application token is a node token narrowed to one application: its
// claims name the node and a service (JoinClaims.Service, Namespace), and
// the controller admits it only for that service's instances on that node.
// It admits the per-application proxy of docs/deployment-models.md: one
// proxy for all instances of one application on a node, whose compromise
// exposes that application's identity on that node and nothing else.

// IsApplicationToken reports whether c are an application token's claims:
// a node token scoped to one service.
func (c JoinClaims) IsApplicationToken() bool { return c.IsNodeToken() && c.Service != "" }

// MintApplicationToken mints an application token for the proxy of
// service (in namespace, "" for the default) on node, valid for ttl.
func MintApplicationToken(key []byte, adapter, node, namespace, service string, ttl time.Duration) (string, error) {
	if node == "" || service == "" {
		return "", errors.New("minting application token: it needs a node and a service")
	}
	return MintJoinToken(key, JoinClaims{Adapter: adapter, Node: node, Service: service, Namespace: namespace}, ttl)
}

// ErrNotNodeToken is the error for an instance's join token presented as a
// node token.
var ErrNotNodeToken = errors.New("not a node token: it names an instance, or no node")

// VerifyNodeAnd checks a node token's signature and expiry, then calls
// accept with its claims for instance, and spends the token for that
// instance only if accept returns nil (as VerifyAnd does for a join
// token). The token stays good for the node's other instances.
func (v *JoinVerifier) VerifyNodeAnd(token, instance string, accept func(JoinClaims) error) (JoinClaims, error) {
	c, err := v.check(token)
	if err != nil {
		return JoinClaims{}, err
	}
	if !c.IsNodeToken() {
		return JoinClaims{}, ErrNotNodeToken
	}
	key := nodeSpendKey(c.Nonce, instance)
	if v.spent.Spent(key) {
		return JoinClaims{}, errNodeTokenUsed
	}
	if accept != nil {
		if err := accept(c); err != nil {
			return JoinClaims{}, err
		}
	}
	ok, err := v.spent.Spend(key, time.Unix(c.Expires, 0))
	if err != nil {
		return JoinClaims{}, err
	}
	if !ok {
		return JoinClaims{}, errNodeTokenUsed
	}
	return c, nil
}

var errNodeTokenUsed = errors.New("node token already used for this instance: a node token admits each instance of its node once; restart the node proxy to get a new one")

// nodeSpendKey is what is spent when a node token admits instance: a
// digest of the token's nonce and the instance, in the alphabet and length
// of a nonce, so the spent stores (and the replicated log) take it as
// they take a join token's.
func nodeSpendKey(nonce, instance string) string {
	h := sha256.Sum256([]byte("weft node join\x00" + nonce + "\x00" + instance))
	return "n" + hex.EncodeToString(h[:12])
}
