package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/controller"
	"github.com/weftmesh/weft/core/policy"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// TestPolicyReload is the controller's policy hot reload with the real
// HCL loader: a file with errors is reported (its diagnostics on stderr,
// the watcher's Error) and the good policy stays in force, with its
// sources; the fixed file is taken and clears the error.
func TestPolicyReload(t *testing.T) {
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "reload", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.hcl")
	// write replaces the file at once, as an editor saves: the watcher
	// never reads half of it.
	write := func(name string) {
		tmp := filepath.Join(dir, "mesh.tmp")
		if err := os.WriteFile(tmp, fixture(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("good.hcl")
	var stderr bytes.Buffer
	log := slog.New(slog.NewTextHandler(&stderr, nil))
	pol, sources, err := loadPolicy(dir, log)
	if err != nil || pol.Mesh.TrustDomain != "good.test" {
		t.Fatalf("loading good.hcl: %v, %v\n%s", pol, err, stderr.String())
	}
	// Each load reports the watcher's state: what the change before it
	// left, since the watcher handles changes one after the other.
	type state struct{ err, source string }
	var w *controller.PolicyWatcher
	states := make(chan state)
	w = controller.NewPolicyWatcher(controller.WatchOptions{
		Dir: dir, Every: 5 * time.Millisecond, MaxFileBytes: policyhcl.MaxFileBytes,
		Load: func() (*policy.Policy, map[string]string, error) {
			// Read first: the test writes the next change once it has the
			// state.
			pol, sources, err := loadPolicy(dir, log)
			states <- state{err: w.Error(), source: w.Sources()["mesh.hcl"]}
			return pol, sources, err
		},
		Summarize: policyhcl.Summary, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, sources)
	out := make(chan *policy.Policy)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, out); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	bound := time.After(10 * time.Second)

	steps := []struct {
		fixture string
		// sent: the trust domain the change sends, "" when it is rejected;
		// wantErr and wantSource: the watcher's state after it.
		sent, wantErr, wantSource string
	}{
		{fixture: "bad.hcl", wantErr: "has errors (see above)", wantSource: `"good.test"`},
		{fixture: "fixed.hcl", sent: "fixed.test", wantSource: `"fixed.test"`},
		// Again, to see the state the fixed file left.
		{fixture: "good.hcl", sent: "good.test", wantSource: `"good.test"`},
	}
	before := state{source: string(fixture("good.hcl"))}
	for i, st := range steps {
		write(st.fixture)
		var got state
		select {
		case got = <-states:
		case <-bound:
			t.Fatalf("%s was not loaded within 10s (a rejected change must send nothing)", st.fixture)
		}
		if i > 0 {
			prev := steps[i-1]
			if prev.wantErr == "" && got.err != "" || !strings.Contains(got.err, prev.wantErr) {
				t.Errorf("after %s: Error() = %q, want it to contain %q", prev.fixture, got.err, prev.wantErr)
			}
			if !strings.Contains(got.source, prev.wantSource) {
				t.Errorf("after %s: the source in force is\n%s\nwant the one with %s", prev.fixture, got.source, prev.wantSource)
			}
		} else if got != before {
			t.Errorf("before any change: %+v, want %+v", got, before)
		}
		if st.sent == "" {
			continue
		}
		select {
		case p := <-out:
			if p.Mesh.TrustDomain != st.sent {
				t.Errorf("%s: sent trust domain %q, want %q", st.fixture, p.Mesh.TrustDomain, st.sent)
			}
		case <-bound:
			t.Fatalf("%s: no policy sent within 10s", st.fixture)
		}
	}
	// The diagnostic is one record with its place in the file.
	if !strings.Contains(stderr.String(), `summary="Invalid default action"`) || !strings.Contains(stderr.String(), "file="+file+" line=3 column=") {
		t.Errorf("the bad file's diagnostics are not logged with their file and line:\n%s", stderr.String())
	}
}
