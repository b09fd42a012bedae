package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// A CA whose state is replicated (core/state, on hashicorp/raft) does not
// write its directory when it rotates or retires roots: it computes the
// next State and hands it to the function given to SetCommit, which makes
// it durable on a quorum of controller replicas; each replica's copy of
// the replicated state then installs it (Install) on its own CA. The next
// State names the one it replaces (State.Digest), so of two rotations
// computed from one state only the first commits.

// State is the whole CA as controller replicas share it: the active root
// and its key, the previous roots still trusted with their
// cross-signatures and retirement times, and the join secret.
type State struct {
	Root     string          `json:"root"` // PEM
	Key      string          `json:"key"`  // PEM, PKCS #8
	Previous []previousState `json:"previous"`
	Secret   []byte          `json:"secret"`
}

// Digest names a state: the SHA-256 of its JSON encoding, in hex.
func (s State) Digest() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ErrStale is wrapped by a commit refused because the CA state changed
// since the new one was computed from it (another replica rotated first).
var ErrStale = errors.New("the CA changed meanwhile")

// SetCommit makes Rotate and Retire replicated: instead of writing the
// directory, they call commit with the state they computed and the digest
// of the state it replaces; commit returns once the new state is durable
// and installed here (through Install), or an error and nothing changed.
func (c *CA) SetCommit(commit func(base string, next State) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commit = commit
}

// State returns the CA's current state.
func (c *CA) State() (State, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stateLocked(c.root, c.key, c.previous)
}

func (c *CA) stateLocked(root *x509.Certificate, key crypto.Signer, previous []previousRoot) (State, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return State{}, fmt.Errorf("encoding CA key: %w", err)
	}
	st := State{Root: string(pemCert(root)), Key: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		Previous: []previousState{}, Secret: c.secret}
	for _, p := range previous {
		st.Previous = append(st.Previous, previousState{ID: RootID(p.cert), Root: string(pemCert(p.cert)),
			CrossSigned: string(pemCert(p.cross)), RetireAt: p.retireAt.UTC()})
	}
	return st, nil
}

// Install makes st the CA's state, after checking that it adds up (the
// key is the root's, every cross-signature links one root to the next).
// It reports whether the roots or the secret changed.
func (c *CA) Install(st State) (bool, error) {
	root, key, prev, err := parseState(st)
	if err != nil {
		return false, fmt.Errorf("installing the replicated CA state: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Expired previous roots stay until a committed Retire drops them, so
	// that State here is the state committed (its Digest matches).
	same := c.root != nil && c.root.Equal(root) && len(prev) == len(c.previous) && string(st.Secret) == string(c.secret)
	if same {
		for i := range prev {
			if !prev[i].cert.Equal(c.previous[i].cert) || !prev[i].retireAt.Equal(c.previous[i].retireAt) {
				same = false
			}
		}
	}
	c.root, c.key, c.previous, c.secret = root, key, prev, st.Secret
	return !same, nil
}

// NewFromState returns a CA holding st, with no directory: a replica that
// joins a cluster takes the cluster's CA this way.
func NewFromState(st State) (*CA, error) {
	c := &CA{LeafTTL: DefaultLeafTTL, now: time.Now}
	if _, err := c.Install(st); err != nil {
		return nil, err
	}
	return c, nil
}

func parseState(st State) (*x509.Certificate, crypto.Signer, []previousRoot, error) {
	root, err := parsePEMCert(st.Root)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the root: %w", err)
	}
	if !root.IsCA {
		return nil, nil, nil, errors.New("the root is not a CA certificate")
	}
	kb, _ := pem.Decode([]byte(st.Key))
	if kb == nil {
		return nil, nil, nil, errors.New("the key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parsing the key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(root.PublicKey) {
		return nil, nil, nil, errors.New("the key is not the root's")
	}
	if len(st.Secret) < 16 {
		return nil, nil, nil, errors.New("the join secret is shorter than 16 bytes")
	}
	var prev []previousRoot
	for i, ps := range st.Previous {
		r, err := parsePEMCert(ps.Root)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("previous root %d: %w", i, err)
		}
		cross, err := parsePEMCert(ps.CrossSigned)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("cross-signature of previous root %d: %w", i, err)
		}
		if err := cross.CheckSignatureFrom(r); err != nil {
			return nil, nil, nil, fmt.Errorf("the cross-signature of previous root %s is not signed by it: %w", ps.ID, err)
		}
		prev = append(prev, previousRoot{cert: r, cross: cross, retireAt: ps.RetireAt})
	}
	for i, p := range prev {
		next := root
		if i+1 < len(prev) {
			next = prev[i+1].cert
		}
		if pub, ok := next.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(p.cross.PublicKey) {
			return nil, nil, nil, fmt.Errorf("previous root %s cross-signs a key that is not the next root's", RootID(p.cert))
		}
	}
	return root, key, prev, nil
}

// rotateReplicated is Rotate for a CA with a commit function.
func (c *CA) rotateReplicated(commit func(string, State) error) (Rotation, error) {
	c.mu.RLock()
	now := c.now()
	oldRoot, oldKey, oldPrev := c.root, c.key, c.previous
	base, err := c.stateLocked(oldRoot, oldKey, oldPrev)
	c.mu.RUnlock()
	if err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	newCert, newKey, err := newRoot(now)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	cross, err := crossSign(newCert, oldRoot, oldKey, now)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	retireAt := now.Add(c.LeafTTL + clockSkew)
	previous := append(livePrevious(oldPrev, now), previousRoot{cert: oldRoot, cross: cross, retireAt: retireAt})
	next, err := c.stateLocked(newCert, newKey, previous)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	if err := commit(base.Digest(), next); err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	return Rotation{Old: info(oldRoot, false, retireAt), New: info(newCert, true, time.Time{})}, nil
}

// retireReplicated is Retire for a CA with a commit function.
func (c *CA) retireReplicated(commit func(string, State) error) ([]RootInfo, error) {
	c.mu.RLock()
	now := c.now()
	live := livePrevious(c.previous, now)
	if len(live) == len(c.previous) {
		c.mu.RUnlock()
		return nil, nil
	}
	var gone []RootInfo
	for _, p := range c.previous {
		if !now.Before(p.retireAt) {
			gone = append(gone, info(p.cert, false, p.retireAt))
		}
	}
	base, err := c.stateLocked(c.root, c.key, c.previous)
	var next State
	if err == nil {
		next, err = c.stateLocked(c.root, c.key, live)
	}
	c.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("retiring roots: %w", err)
	}
	if err := commit(base.Digest(), next); err != nil {
		return nil, fmt.Errorf("retiring roots: %w", err)
	}
	return gone, nil
}

// New returns a CA with a new root and join secret, held in memory only:
// a controller replica's candidate CA, which becomes the cluster's if
// this replica is the first leader of a new cluster.
func New() (*CA, error) {
	c := &CA{LeafTTL: DefaultLeafTTL, now: time.Now}
	root, key, err := newRoot(c.now())
	if err != nil {
		return nil, err
	}
	c.root, c.key = root, key
	c.secret = make([]byte, 32)
	if _, err := rand.Read(c.secret); err != nil {
		return nil, fmt.Errorf("generating join secret: %w", err)
	}
	return c, nil
}
