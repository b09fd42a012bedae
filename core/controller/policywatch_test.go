package controller

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/policy"
)

// watchState is what the watcher reports between two changes.
type watchState struct {
	err     string
	sources map[string]string
}

// testLoader is a PolicyLoader over dir/mesh.hcl, whose one line is
// `trust_domain = NAME` (a good policy), `empty` (no policy, no error), or
// anything else (an error). Once it has read the file it sends the
// watcher's state on states: the state the previous change left, since
// the watcher handles changes one after the other.
func testLoader(dir string, w **PolicyWatcher, states chan<- watchState) PolicyLoader {
	return func() (*policy.Policy, map[string]string, error) {
		// Read first: the test writes the next change once it has the
		// state.
		b, err := os.ReadFile(filepath.Join(dir, "mesh.hcl"))
		states <- watchState{err: (*w).Error(), sources: (*w).Sources()}
		if err != nil {
			return nil, nil, err
		}
		src := strings.TrimSpace(string(b))
		if src == "empty" {
			return nil, nil, nil
		}
		td, ok := strings.CutPrefix(src, "trust_domain = ")
		if !ok {
			return nil, nil, errors.New("mesh.hcl:1: want trust_domain = NAME; fix the file")
		}
		return &policy.Policy{Mesh: policy.Mesh{TrustDomain: td}}, map[string]string{"mesh.hcl": src}, nil
	}
}

// TestPolicyWatcher: a change with errors never replaces the good policy
// (nothing is sent, its sources stay, Error says why); a fixed file is
// taken and clears the error.
func TestPolicyWatcher(t *testing.T) {
	type step struct {
		write string
		// sent is the trust domain of the policy the change sends, "" when
		// it is rejected; err, a part of Error() after it ("" for none);
		// source, mesh.hcl's source in force after it.
		sent, err, source string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"good, then good", []step{
			{write: "trust_domain = b.test", sent: "b.test", source: "trust_domain = b.test"},
		}},
		{"a bad file keeps the good policy; the fixed one is taken", []step{
			{write: "trust_domain = ", err: "want trust_domain = NAME", source: "trust_domain = a.test"},
			{write: "trust_domain = c.test", sent: "c.test", source: "trust_domain = c.test"},
		}},
		{"two bad files in a row, then a good one", []step{
			{write: "garbage", err: "fix the file", source: "trust_domain = a.test"},
			{write: "more garbage", err: "fix the file", source: "trust_domain = a.test"},
			{write: "trust_domain = d.test", sent: "d.test", source: "trust_domain = d.test"},
		}},
		{"a loader that returns no policy and no error is a rejection", []step{
			{write: "empty", err: "the loader returned no policy", source: "trust_domain = a.test"},
			{write: "trust_domain = e.test", sent: "e.test", source: "trust_domain = e.test"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "mesh.hcl")
			if err := os.WriteFile(file, []byte("trust_domain = a.test"), 0o644); err != nil {
				t.Fatal(err)
			}
			states := make(chan watchState)
			var logs bytes.Buffer
			var w *PolicyWatcher
			w = NewPolicyWatcher(WatchOptions{Dir: dir, Every: 5 * time.Millisecond, MaxFileBytes: 1 << 20,
				Load: testLoader(dir, &w, states), Logger: slog.New(slog.NewTextHandler(&logs, nil))},
				map[string]string{"mesh.hcl": "trust_domain = a.test"})
			out := make(chan *policy.Policy)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { w.Run(ctx, out); close(done) }()
			t.Cleanup(func() { cancel(); <-done })

			bound := time.After(10 * time.Second)
			// next writes a change and waits for the watcher to load it,
			// returning the state the change before it left.
			next := func(src string) watchState {
				t.Helper()
				writeAtomic(t, file, []byte(src))
				select {
				case s := <-states:
					return s
				case <-bound:
					t.Fatalf("the watcher did not load %q within 10s", src)
				}
				return watchState{}
			}
			check := func(what string, got watchState, want step) {
				t.Helper()
				if want.err == "" && got.err != "" || !strings.Contains(got.err, want.err) {
					t.Errorf("after %s: Error() = %q, want it to contain %q", what, got.err, want.err)
				}
				if got.sources["mesh.hcl"] != want.source {
					t.Errorf("after %s: Sources() = %v, want mesh.hcl = %q", what, got.sources, want.source)
				}
			}
			for i, st := range tc.steps {
				if i > 0 {
					check(tc.steps[i-1].write, next(st.write), tc.steps[i-1])
				} else {
					check("start", next(st.write), step{source: "trust_domain = a.test"})
				}
				if st.sent == "" {
					continue
				}
				select {
				case p := <-out:
					if p.Mesh.TrustDomain != st.sent {
						t.Errorf("after %q the watcher sent trust domain %q, want %q", st.write, p.Mesh.TrustDomain, st.sent)
					}
				case <-bound:
					t.Fatalf("no policy sent within 10s after %q", st.write)
				}
			}
			// One more change shows the state the last step left; a
			// rejected change sent nothing meanwhile (out is unbuffered,
			// and the watcher would be stuck sending it).
			last := tc.steps[len(tc.steps)-1]
			check(last.write, next("trust_domain = z.test"), last)
			select {
			case p := <-out:
				if p.Mesh.TrustDomain != "z.test" {
					t.Errorf("a rejected change sent trust domain %q", p.Mesh.TrustDomain)
				}
			case <-bound:
				t.Fatal("no policy sent within 10s after the last change")
			}
			if strings.Contains(tc.name, "bad") && !strings.Contains(logs.String(), "the last good policy stays in force") {
				t.Errorf("a rejected change is not logged:\n%s", logs.String())
			}
		})
	}
}

// TestHashDir: the hash changes with a file's content, its name, a new
// file and a file past the size bound; files that are not *.hcl do not
// count.
func TestHashDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.hcl", "one")
	for _, tc := range []struct {
		name   string
		change func()
		same   bool
	}{
		{"content", func() { write("a.hcl", "two") }, false},
		{"another file", func() { write("b.hcl", "x") }, false},
		{"not an .hcl file", func() { write("notes.txt", "x") }, true},
		{"a rename", func() { os.Rename(filepath.Join(dir, "b.hcl"), filepath.Join(dir, "c.hcl")) }, false},
		{"grown past the bound", func() { write("a.hcl", "twotwotwotwo") }, false},
		{"changed past the bound only", func() { write("a.hcl", "twotwotwoXXX") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hashDir(dir, 8)
			tc.change()
			after := hashDir(dir, 8)
			if (before == after) != tc.same {
				t.Errorf("hash before %s = %s, after = %s; want same=%v", tc.name, before, after, tc.same)
			}
		})
	}
}

// writeAtomic replaces file with b at once (a temporary file renamed over
// it, as editors save), so the watcher never reads half of it.
func writeAtomic(t *testing.T, file string, b []byte) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}
