package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Root rotation, the way Consul's mesh does it: Rotate makes a new root
// the active one and cross-signs it with the old root's key. A leaf of the
// new root is issued with that cross-signature as its intermediate, so a
// peer that trusts only the old root (it has not heard of the rotation
// yet) still verifies it; a peer that trusts the new root verifies it
// directly. The old root stays in the bundle (RootsPEM, Pool) until every
// leaf it signed has expired: LeafTTL (plus a minute of clock skew) after
// the rotation. Retire drops it then.

// RootInfo describes one root in the trust bundle.
type RootInfo struct {
	ID        string    `json:"id"`
	Subject   string    `json:"subject"`
	Active    bool      `json:"active"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// RetireAt is when a previous root leaves the bundle (nil: active).
	RetireAt *time.Time `json:"retire_at,omitempty"`
}

// State is "active", or "retiring at <time>" for a previous root.
func (r RootInfo) State() string {
	if r.Active || r.RetireAt == nil {
		return "active"
	}
	return "retiring at " + r.RetireAt.UTC().Format(time.RFC3339)
}

// Rotation is what Rotate did.
type Rotation struct {
	Old RootInfo `json:"old"`
	New RootInfo `json:"new"`
}

// rotationState is rotation.json.
type rotationState struct {
	// Active is the ID of ca.crt when the file was written.
	Active   string          `json:"active"`
	Previous []previousState `json:"previous"`
}

type previousState struct {
	ID string `json:"id"`
	// Root is the previous root; CrossSigned, the root that replaced it,
	// signed by it. PEM.
	Root        string    `json:"root"`
	CrossSigned string    `json:"cross_signed"`
	RetireAt    time.Time `json:"retire_at"`
}

func info(root *x509.Certificate, active bool, retireAt time.Time) RootInfo {
	r := RootInfo{ID: RootID(root), Subject: root.Subject.CommonName, Active: active, NotBefore: root.NotBefore, NotAfter: root.NotAfter}
	if !active {
		t := retireAt
		r.RetireAt = &t
	}
	return r
}

// Roots lists the roots in the bundle: the active one first, then the
// previous ones still trusted, newest first.
func (c *CA) Roots() []RootInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := []RootInfo{info(c.root, true, time.Time{})}
	for i := len(c.previous) - 1; i >= 0; i-- {
		out = append(out, info(c.previous[i].cert, false, c.previous[i].retireAt))
	}
	return out
}

// Rotate makes a new root the active one. The old root signs the new one
// (the cross-signature goes into every new leaf's chain) and stays trusted
// until LeafTTL after now. Rotating again while an older root is still
// trusted is fine: each new leaf carries the chain of cross-signatures back
// to every root still in the bundle.
//
// The new state is written to the CA directory before it is used, so a
// controller that restarts (or crashes mid-way) comes back with either the
// old or the new state, never a mix.
func (c *CA) Rotate() (Rotation, error) {
	if commit := c.committer(); commit != nil {
		return c.rotateReplicated(commit)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	newCert, newKey, err := newRoot(now)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	cross, err := crossSign(newCert, c.root, c.key, now)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	retireAt := now.Add(c.LeafTTL + clockSkew)
	previous := append(livePrevious(c.previous, now), previousRoot{cert: c.root, cross: cross, retireAt: retireAt})

	// ca.*.next first; then rotation.json, which names the new root
	// active and so commits the rotation; then the renames (finishRotation
	// completes them after a crash).
	if err := writeRootPair(c.dir, nextSuffix, newCert, newKey); err != nil {
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	if err := writeRotation(c.dir, newCert, previous); err != nil {
		os.Remove(filepath.Join(c.dir, keyFile+nextSuffix))
		os.Remove(filepath.Join(c.dir, rootFile+nextSuffix))
		return Rotation{}, fmt.Errorf("rotating the root: %w", err)
	}
	for _, f := range []string{keyFile, rootFile} {
		if err := os.Rename(filepath.Join(c.dir, f+nextSuffix), filepath.Join(c.dir, f)); err != nil {
			// Committed: the next start finishes the renames.
			return Rotation{}, fmt.Errorf("rotating the root: installing %s: %w (the rotation is recorded; restart the controller to complete it)", f, err)
		}
	}
	r := Rotation{Old: info(c.root, false, retireAt), New: info(newCert, true, time.Time{})}
	c.root, c.key, c.previous = newCert, newKey, previous
	return r, nil
}

// crossSign signs next (its subject, key ID and public key) with the old
// root's key, valid no longer than either root.
func crossSign(next, old *x509.Certificate, oldKey crypto.Signer, now time.Time) (*x509.Certificate, error) {
	notAfter := next.NotAfter
	if old.NotAfter.Before(notAfter) {
		notAfter = old.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               next.Subject,
		SubjectKeyId:          next.SubjectKeyId,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              next.KeyUsage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, old, next.PublicKey, oldKey)
	if err != nil {
		return nil, fmt.Errorf("cross-signing the new root with the old one: %w", err)
	}
	return x509.ParseCertificate(der)
}

func livePrevious(prev []previousRoot, now time.Time) []previousRoot {
	var out []previousRoot
	for _, p := range prev {
		if now.Before(p.retireAt) {
			out = append(out, p)
		}
	}
	return out
}

// NextRetirement is when the oldest previous root leaves the bundle;
// false when there is none.
func (c *CA) NextRetirement() (time.Time, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var next time.Time
	for _, p := range c.previous {
		if next.IsZero() || p.retireAt.Before(next) {
			next = p.retireAt
		}
	}
	return next, !next.IsZero()
}

// Retire drops the previous roots whose leaves have all expired, and
// returns them. They are dropped even if rotation.json cannot be
// rewritten (the error says so): loading skips them anyway.
func (c *CA) Retire() ([]RootInfo, error) {
	if commit := c.committer(); commit != nil {
		return c.retireReplicated(commit)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	live := livePrevious(c.previous, now)
	if len(live) == len(c.previous) {
		return nil, nil
	}
	var gone []RootInfo
	for _, p := range c.previous {
		if !now.Before(p.retireAt) {
			gone = append(gone, info(p.cert, false, p.retireAt))
		}
	}
	c.previous = live
	if err := writeRotation(c.dir, c.root, live); err != nil {
		return gone, fmt.Errorf("retiring roots: %w", err)
	}
	return gone, nil
}

func writeRotation(dir string, active *x509.Certificate, previous []previousRoot) error {
	st := rotationState{Active: RootID(active), Previous: []previousState{}}
	for _, p := range previous {
		st.Previous = append(st.Previous, previousState{
			ID: RootID(p.cert), Root: string(pemCert(p.cert)), CrossSigned: string(pemCert(p.cross)), RetireAt: p.retireAt.UTC(),
		})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", rotationFile, err)
	}
	if err := writeAtomic(filepath.Join(dir, rotationFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", rotationFile, err)
	}
	return nil
}

// finishRotation completes a rotation that a crash interrupted: with
// ca.crt.next there, the rotation happened if rotation.json names it
// active (then it is installed) and did not otherwise (then it is removed).
func (c *CA) finishRotation() error {
	nextCrt, nextKey := filepath.Join(c.dir, rootFile+nextSuffix), filepath.Join(c.dir, keyFile+nextSuffix)
	b, err := readFile(nextCrt)
	if errors.Is(err, os.ErrNotExist) {
		os.Remove(nextKey)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", nextCrt, err)
	}
	committed := false
	if st, err := readRotation(c.dir); err == nil && st != nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if cert, err := x509.ParseCertificate(blk.Bytes); err == nil && RootID(cert) == st.Active {
				committed = true
			}
		}
	}
	if !committed {
		os.Remove(nextKey)
		os.Remove(nextCrt)
		return nil
	}
	if _, err := os.Stat(nextKey); err == nil {
		if err := os.Rename(nextKey, filepath.Join(c.dir, keyFile)); err != nil {
			return fmt.Errorf("completing the interrupted rotation: installing %s: %w", nextKey, err)
		}
	}
	if err := os.Rename(nextCrt, filepath.Join(c.dir, rootFile)); err != nil {
		return fmt.Errorf("completing the interrupted rotation: installing %s: %w", nextCrt, err)
	}
	return nil
}

func readRotation(dir string) (*rotationState, error) {
	b, err := readJSONFile(filepath.Join(dir, rotationFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st rotationState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// loadRotation reads the previous roots from rotation.json, checking that
// it belongs to ca.crt and that every cross-signature links one root to
// the next. Roots past their retirement are skipped.
func (c *CA) loadRotation() error {
	path := filepath.Join(c.dir, rotationFile)
	fix := "restore it from a backup, or remove it to trust only ca.crt (sidecars holding leaves of an older root then fail to connect until they renew)"
	st, err := readRotation(c.dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w; %s", path, err, fix)
	}
	if st == nil {
		return nil
	}
	if id := RootID(c.root); st.Active != id {
		return fmt.Errorf("reading %s: it belongs to root %s, but ca.crt is root %s (was ca.crt replaced by hand?); %s", path, st.Active, id, fix)
	}
	now := c.now()
	var prev []previousRoot
	for i, ps := range st.Previous {
		root, err := parsePEMCert(ps.Root)
		if err != nil {
			return fmt.Errorf("reading %s: previous root %d (%s): %w; %s", path, i, ps.ID, err, fix)
		}
		cross, err := parsePEMCert(ps.CrossSigned)
		if err != nil {
			return fmt.Errorf("reading %s: cross-signature of previous root %d (%s): %w; %s", path, i, ps.ID, err, fix)
		}
		if err := cross.CheckSignatureFrom(root); err != nil {
			return fmt.Errorf("reading %s: the cross-signature of previous root %s is not signed by it: %w; %s", path, ps.ID, err, fix)
		}
		prev = append(prev, previousRoot{cert: root, cross: cross, retireAt: ps.RetireAt})
	}
	for i, p := range prev {
		next := c.root
		if i+1 < len(prev) {
			next = prev[i+1].cert
		}
		if pub, ok := next.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(p.cross.PublicKey) {
			return fmt.Errorf("reading %s: previous root %s cross-signs a key that is not the next root's (%s); %s", path, RootID(p.cert), RootID(next), fix)
		}
	}
	c.previous = livePrevious(prev, now)
	return nil
}

func parsePEMCert(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// Reload reads the CA directory again and takes its roots when another
// controller replica sharing the directory rotated or retired them. It
// reports whether the roots changed. While a rotation is under way in the
// directory (ca.crt.next is there, or the files do not agree yet) it
// changes nothing and reports no error: the next call sees the result.
func (c *CA) Reload() (bool, error) {
	busy := func() bool {
		_, err := os.Stat(filepath.Join(c.dir, rootFile+nextSuffix))
		return err == nil
	}
	if busy() {
		return false, nil
	}
	certPEM, err := readFile(filepath.Join(c.dir, rootFile))
	if err != nil {
		return false, fmt.Errorf("reloading the CA: %w", err)
	}
	n := &CA{dir: c.dir, now: c.now}
	if err = n.load(certPEM); err == nil {
		err = n.loadRotation()
	}
	if err != nil {
		if busy() {
			return false, nil
		}
		return false, fmt.Errorf("reloading the CA: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sameRoots(c, n) {
		return false, nil
	}
	c.root, c.key, c.previous = n.root, n.key, n.previous
	return true, nil
}

func sameRoots(a, b *CA) bool {
	if !a.root.Equal(b.root) || len(a.previous) != len(b.previous) {
		return false
	}
	for i := range a.previous {
		if !a.previous[i].cert.Equal(b.previous[i].cert) || !a.previous[i].retireAt.Equal(b.previous[i].retireAt) {
			return false
		}
	}
	return true
}

// CrossSigned returns the cross-signed roots that new leaves carry after
// the leaf (DER, newest first): none without a previous root.
func (c *CA) CrossSigned() [][]byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out [][]byte
	for i := len(c.previous) - 1; i >= 0; i-- {
		out = append(out, c.previous[i].cross.Raw)
	}
	return out
}
