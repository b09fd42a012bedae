package sdk

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The minting half of Weft's join tokens. The controller verifies them
// (core/ca.JoinVerifier); the SDK mints them with the key the controller
// handed the adapter, and links nothing of the controller to do it. The
// two halves agree on the format below, and TestMintJoinToken verifies a
// token minted here with core/ca's verifier, so a change to either breaks
// that test.
//
// Format: "wj1." base64url(JSON claims) "." base64url(HMAC-SHA256 of
// "wj1." and the encoded claims, keyed with the adapter's join key).

const joinTokenPrefix = "wj1."

// joinClaims is what a join token asserts; the JSON names are the wire
// format core/ca reads.
type joinClaims struct {
	Adapter   string `json:"a"`
	Instance  string `json:"i"`
	Service   string `json:"s"`
	Namespace string `json:"n"`
	Expires   int64  `json:"e"`
	Nonce     string `json:"r"`
	Node      string `json:"nd,omitempty"`
}

// MintJoinToken mints a single-use join token for the sidecar of one
// instance the adapter starts (CapJoinTokens), with the key the controller
// handed over in MeshContext.JoinKey. adapter is the name the controller
// knows the adapter by (InfoResponse.Name); the token names the instance's
// ID, service and namespace (defaulted), and is valid for ttl.
func MintJoinToken(mesh MeshContext, adapter string, in Instance, ttl time.Duration) (string, error) {
	return mint(mesh, joinClaims{Adapter: adapter, Instance: in.ID, Service: in.Service, Namespace: in.NS()}, ttl)
}

// MintNodeToken mints a node token: it admits the node proxy of node (a
// weft-proxy serving several instances, docs/deployment-models.md) for
// each instance the adapter reports on that node (model.Instance.Node),
// once per instance, for ttl. The controller refuses it for an instance of
// any other node.
func MintNodeToken(mesh MeshContext, adapter, node string, ttl time.Duration) (string, error) {
	if node == "" {
		return "", errors.New("minting node token: no node name")
	}
	return mint(mesh, joinClaims{Adapter: adapter, Node: node}, ttl)
}

// MintApplicationToken mints an application token: a node token narrowed
// to one application, for a proxy that serves every instance of service
// (in namespace, "" for the default) on node and nothing else
// (docs/deployment-models.md). The controller refuses it for an instance
// of another service, another namespace or another node.
func MintApplicationToken(mesh MeshContext, adapter, node, namespace, service string, ttl time.Duration) (string, error) {
	if node == "" || service == "" {
		return "", errors.New("minting application token: it needs a node and a service")
	}
	ns := Instance{Namespace: namespace}.NS()
	return mint(mesh, joinClaims{Adapter: adapter, Node: node, Service: service, Namespace: ns}, ttl)
}

func mint(mesh MeshContext, c joinClaims, ttl time.Duration) (string, error) {
	if len(mesh.JoinKey) == 0 {
		return "", errors.New("minting join token: the controller sent no join key; announce CapJoinTokens in Info so that it does")
	}
	if len(mesh.JoinKey) < 16 {
		return "", errors.New("minting join token: key shorter than 16 bytes")
	}
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("minting join token: %w", err)
	}
	c.Expires = time.Now().Add(ttl).Unix()
	c.Nonce = hex.EncodeToString(nonce[:])
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("minting join token: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(body)
	m := hmac.New(sha256.New, mesh.JoinKey)
	m.Write([]byte(joinTokenPrefix + p))
	return joinTokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}
