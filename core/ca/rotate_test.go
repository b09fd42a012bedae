package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/spiffe"
)

var apiID = spiffe.Identity{TrustDomain: "weft.local", Namespace: "default", Service: "api"}

// clock is a settable time for a CA or a spent-token file under test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// add moves the clock on by d.
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

func loadAt(t *testing.T, dir string, clk *clock) *CA {
	t.Helper()
	c, err := load(dir, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chainDER splits a PEM chain into DER certificates.
func chainDER(t *testing.T, chain []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for rest := chain; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		out = append(out, b.Bytes)
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func rootCert(t *testing.T, c *CA) *x509.Certificate {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.root
}

func issueLeaf(t *testing.T, c *CA) [][]byte {
	t.Helper()
	chain, _, err := c.SignCSR(csr(t), apiID)
	if err != nil {
		t.Fatal(err)
	}
	return chainDER(t, chain)
}

// TestRotationVerifiesEveryWay is the no-dropped-traffic property: during a
// rotation, every leaf a sidecar may hold verifies at every peer, whatever
// bundle that peer holds (old only, or old and new); once the old root
// retires, only new leaves remain and they verify against the new root.
func TestRotationVerifiesEveryWay(t *testing.T) {
	clk := &clock{t: time.Now()}
	c := loadAt(t, t.TempDir(), clk)
	r1 := rootCert(t, c)
	oldLeaf := issueLeaf(t, c)
	oldBundle := c.Pool()

	rot, err := c.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	r2 := rootCert(t, c)
	if rot.Old.ID != RootID(r1) || rot.New.ID != RootID(r2) || rot.Old.ID == rot.New.ID {
		t.Fatalf("rotation = %+v, want old %s, new %s", rot, RootID(r1), RootID(r2))
	}
	if r1.Subject.String() == r2.Subject.String() {
		t.Errorf("the new root has the old one's subject %q: chain building could confuse them", r1.Subject)
	}
	newLeaf := issueLeaf(t, c)
	if len(newLeaf) != 2 {
		t.Fatalf("a new leaf's chain has %d certificates, want the leaf and the cross-signed root", len(newLeaf))
	}
	c.mu.RLock()
	rot2 := c.previous[0].retireAt
	c.mu.RUnlock()
	if want := clk.t.Add(DefaultLeafTTL + clockSkew); !rot2.Equal(want) {
		t.Errorf("the old root retires at %v, want %v (max leaf lifetime after the rotation)", rot2, want)
	}

	for _, tc := range []struct {
		name  string
		leaf  [][]byte
		roots *x509.CertPool
		ok    bool
	}{
		{"old leaf, peer with the old bundle", oldLeaf, oldBundle, true},
		{"old leaf, peer with the new bundle", oldLeaf, c.Pool(), true},
		{"new leaf, peer with the old bundle (cross-signed)", newLeaf, oldBundle, true},
		{"new leaf, peer with the new bundle", newLeaf, c.Pool(), true},
		{"new leaf, peer with the new root only", newLeaf, poolOf(r2), true},
		{"new leaf without its intermediate, peer with the old root only", newLeaf[:1], poolOf(r1), false},
		{"old leaf, peer with the new root only", oldLeaf, poolOf(r2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := spiffe.VerifyPeer(tc.leaf, tc.roots, "weft.local", clk.t)
			if (err == nil) != tc.ok {
				t.Errorf("VerifyPeer error = %v, want ok = %v", err, tc.ok)
			}
		})
	}

	if got := c.Roots(); len(got) != 2 || !got[0].Active || got[0].ID != RootID(r2) || got[1].Active || got[1].ID != RootID(r1) || got[1].RetireAt == nil {
		t.Errorf("Roots() = %+v, want the new root active, then the old one retiring", got)
	}
	if gone, err := c.Retire(); err != nil || len(gone) != 0 {
		t.Errorf("Retire() before the old leaves expired = %v, %v; want nothing", gone, err)
	}
	next, ok := c.NextRetirement()
	if !ok || !next.Equal(rot2) {
		t.Errorf("NextRetirement() = %v, %v; want %v", next, ok, rot2)
	}
	clk.t = next
	gone, err := c.Retire()
	if err != nil || len(gone) != 1 || gone[0].ID != RootID(r1) {
		t.Fatalf("Retire() at the retirement time = %+v, %v; want the old root", gone, err)
	}
	if got := c.Roots(); len(got) != 1 || got[0].ID != RootID(r2) {
		t.Errorf("Roots() after retirement = %+v, want the new root alone", got)
	}
	if _, ok := c.NextRetirement(); ok {
		t.Error("NextRetirement() reports a root after every previous one retired")
	}
	if n := len(chainDER(t, c.RootsPEM())); n != 1 {
		t.Errorf("RootsPEM() holds %d roots after retirement, want 1", n)
	}
	if leaf := issueLeaf(t, c); len(leaf) != 1 {
		t.Errorf("a leaf issued after retirement carries %d certificates, want the leaf alone", len(leaf))
	} else if _, err := spiffe.VerifyPeer(leaf, poolOf(r2), "weft.local", clk.t); err != nil {
		t.Error(err)
	}
}

// TestRotateTwice: a second rotation while the first one's old root is
// still trusted; a leaf of the newest root verifies at a peer that knows
// only the first root, through both cross-signatures.
func TestRotateTwice(t *testing.T) {
	clk := &clock{t: time.Now()}
	c := loadAt(t, t.TempDir(), clk)
	r1 := rootCert(t, c)
	if _, err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	r2 := rootCert(t, c)
	clk.t = clk.t.Add(time.Hour)
	if _, err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	r3 := rootCert(t, c)
	leaf := issueLeaf(t, c)
	if len(leaf) != 3 {
		t.Fatalf("chain has %d certificates, want leaf + two cross-signatures", len(leaf))
	}
	for _, r := range []*x509.Certificate{r1, r2, r3} {
		if _, err := spiffe.VerifyPeer(leaf, poolOf(r), "weft.local", clk.t); err != nil {
			t.Errorf("a leaf of the third root does not verify against %s alone: %v", r.Subject.CommonName, err)
		}
	}
	roots := c.Roots()
	if len(roots) != 3 || roots[0].ID != RootID(r3) || roots[1].ID != RootID(r2) || roots[2].ID != RootID(r1) {
		t.Fatalf("Roots() = %+v, want third, second, first", roots)
	}
	// The first root retires an hour before the second.
	clk.t = *roots[2].RetireAt
	if gone, _ := c.Retire(); len(gone) != 1 || gone[0].ID != RootID(r1) {
		t.Fatalf("Retire() = %+v, want the first root only", gone)
	}
	if leaf := issueLeaf(t, c); len(leaf) != 2 {
		t.Errorf("after the first root retired the chain has %d certificates, want 2", len(leaf))
	}
}

// TestRotationSurvivesRestart: the rotated state is in the directory.
func TestRotationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	a := loadAt(t, dir, clk)
	secret := string(a.JoinSecret())
	if _, err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	b := loadAt(t, dir, clk)
	if b.ActiveRootID() != a.ActiveRootID() || string(b.RootsPEM()) != string(a.RootsPEM()) || string(b.JoinSecret()) != secret {
		t.Fatal("reloading after a rotation changed the roots or the join secret")
	}
	ra, rb := a.Roots(), b.Roots()
	if len(rb) != 2 || !rb[1].RetireAt.Equal(*ra[1].RetireAt) {
		t.Fatalf("reloaded roots = %+v, want %+v", rb, ra)
	}
	if leaf := issueLeaf(t, b); len(leaf) != 2 {
		t.Errorf("the reloaded CA issues chains of %d certificates, want 2", len(leaf))
	}
	// Started after the retirement time, the old root is gone.
	late := &clock{t: ra[1].RetireAt.Add(time.Second)}
	if got := loadAt(t, dir, late).Roots(); len(got) != 1 || got[0].ID != a.ActiveRootID() {
		t.Errorf("roots loaded after the retirement time = %+v, want the active root alone", got)
	}
}

// TestLoadFromBeforeRotation loads a CA directory written before rotation
// existed (testdata/v0) and rotates it.
func TestLoadFromBeforeRotation(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.crt", "ca.key", "join.secret"} {
		b, err := os.ReadFile(filepath.Join("testdata", "v0", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o600)
	}
	clk := &clock{t: time.Now()}
	c := loadAt(t, dir, clk)
	old := rootCert(t, c)
	oldLeaf := issueLeaf(t, c)
	if _, err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := spiffe.VerifyPeer(issueLeaf(t, c), poolOf(old), "weft.local", clk.t); err != nil {
		t.Errorf("a new leaf does not verify against the v0 root: %v", err)
	}
	if _, err := spiffe.VerifyPeer(oldLeaf, loadAt(t, dir, clk).Pool(), "weft.local", clk.t); err != nil {
		t.Errorf("a v0 leaf does not verify against the reloaded bundle: %v", err)
	}
}

// TestInterruptedRotation: a crash between writing the new root and
// installing it leaves the directory with the old or the new root, whole.
func TestInterruptedRotation(t *testing.T) {
	for _, tc := range []struct {
		name string
		// undo puts the directory back in the state the crash left.
		undo       func(dir string)
		wantRotate bool
	}{
		{"before rotation.json", func(dir string) {
			// rotation.json not written yet: ca.*.next only.
			os.Rename(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.crt.next"))
			os.Rename(filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.key.next"))
			os.Rename(filepath.Join(dir, "saved.crt"), filepath.Join(dir, "ca.crt"))
			os.Rename(filepath.Join(dir, "saved.key"), filepath.Join(dir, "ca.key"))
			os.Remove(filepath.Join(dir, "rotation.json"))
		}, false},
		{"after rotation.json, before the renames", func(dir string) {
			os.Rename(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.crt.next"))
			os.Rename(filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.key.next"))
			os.Rename(filepath.Join(dir, "saved.crt"), filepath.Join(dir, "ca.crt"))
			os.Rename(filepath.Join(dir, "saved.key"), filepath.Join(dir, "ca.key"))
		}, true},
		{"between the renames", func(dir string) {
			os.Rename(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.crt.next"))
			os.Rename(filepath.Join(dir, "saved.crt"), filepath.Join(dir, "ca.crt"))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := &clock{t: time.Now()}
			c := loadAt(t, dir, clk)
			oldID := c.ActiveRootID()
			copyFile(t, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "saved.crt"))
			copyFile(t, filepath.Join(dir, "ca.key"), filepath.Join(dir, "saved.key"))
			rot, err := c.Rotate()
			if err != nil {
				t.Fatal(err)
			}
			tc.undo(dir)
			got := loadAt(t, dir, clk)
			want := oldID
			if tc.wantRotate {
				want = rot.New.ID
			}
			if got.ActiveRootID() != want {
				t.Errorf("after the crash the active root is %s, want %s", got.ActiveRootID(), want)
			}
			for _, f := range []string{"ca.crt.next", "ca.key.next"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Errorf("%s is still there after loading", f)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBrokenDirectory: each broken CA directory is refused with an error
// that names the file and says what to do.
func TestBrokenDirectory(t *testing.T) {
	other := t.TempDir()
	if _, err := LoadOrCreate(other); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string
	}{
		{"ca.crt is not PEM", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("garbage"), 0o644)
		}, []string{"ca.crt", "no PEM certificate", "restore it from a backup"}},
		{"ca.key is missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "ca.key"))
		}, []string{"ca.key", "restore ca.key"}},
		{"ca.key is another root's", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(other, "ca.key"), filepath.Join(dir, "ca.key"))
		}, []string{"ca.key is not the key of", "ca.crt", "same root"}},
		{"rotation.json is not JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "rotation.json"), []byte("{"), 0o644)
		}, []string{"rotation.json", "remove it to trust only ca.crt"}},
		{"rotation.json too large", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "rotation.json"), bytes.Repeat([]byte(" "), 2<<20), 0o644)
		}, []string{"rotation.json", "larger than the limit of 1 MiB", "remove it to trust only ca.crt"}},
		{"rotation.json nested too deep", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "rotation.json"), bytes.Repeat([]byte("["), 500<<10), 0o644)
		}, []string{"rotation.json", "nested more than 16 levels", "remove it to trust only ca.crt"}},
		{"ca.crt too large", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "ca.crt"), bytes.Repeat([]byte("-"), 2<<20), 0o644)
		}, []string{"ca.crt", "larger than the limit of 1 MiB"}},
		{"join.secret too large", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "join.secret"), bytes.Repeat([]byte("-"), 2<<20), 0o644)
		}, []string{"join.secret", "larger than the limit of 1 MiB"}},
		{"ca.crt replaced by hand after a rotation", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(other, "ca.crt"), filepath.Join(dir, "ca.crt"))
			copyFile(t, filepath.Join(other, "ca.key"), filepath.Join(dir, "ca.key"))
		}, []string{"rotation.json", "belongs to root", "replaced by hand"}},
		{"ca.crt lost after a rotation", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "ca.crt"))
		}, []string{"ca.crt is missing", "restore ca.crt and ca.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := LoadOrCreate(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Rotate(); err != nil {
				t.Fatal(err)
			}
			tc.break_(t, dir)
			_, err = LoadOrCreate(dir)
			if err == nil {
				t.Fatal("a broken CA directory loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestReloadSeesAnotherReplicasRotation: two CAs on one directory (two
// controller replicas); a rotation by one reaches the other on Reload, and
// a rotation under way is left alone.
func TestReloadSeesAnotherReplicasRotation(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	a, b := loadAt(t, dir, clk), loadAt(t, dir, clk)
	if changed, err := b.Reload(); changed || err != nil {
		t.Fatalf("Reload() with nothing new = %v, %v", changed, err)
	}
	if _, err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	changed, err := b.Reload()
	if !changed || err != nil {
		t.Fatalf("Reload() after the other replica rotated = %v, %v; want a change", changed, err)
	}
	if b.ActiveRootID() != a.ActiveRootID() || string(b.RootsPEM()) != string(a.RootsPEM()) {
		t.Error("after Reload the replicas disagree on the roots")
	}
	if _, err := spiffe.VerifyPeer(issueLeaf(t, b), a.Pool(), "weft.local", clk.t); err != nil {
		t.Errorf("a leaf of the reloaded replica does not verify at the other: %v", err)
	}
	// A rotation under way: ca.crt.next is there.
	copyFile(t, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.crt.next"))
	os.WriteFile(filepath.Join(dir, "ca.key"), []byte("half written"), 0o600)
	if changed, err := b.Reload(); changed || err != nil {
		t.Errorf("Reload() during a rotation = %v, %v; want no change and no error", changed, err)
	}
	os.Remove(filepath.Join(dir, "ca.crt.next"))
	if _, err := b.Reload(); err == nil || !strings.Contains(err.Error(), "ca.key") {
		t.Errorf("Reload() of a broken directory = %v, want an error naming ca.key", err)
	}
	if b.ActiveRootID() != a.ActiveRootID() {
		t.Error("a failed Reload changed the roots")
	}
}
