package local

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

// The shapes that crashed the adapter's parser (and so put it in a crash
// loop), at the sizes that did, and a file past the size limit: each is a
// diagnostic.
func TestLoadWorkloadsHostile(t *testing.T) {
	svc := "service \"api\" {\n  command = \"./app\"\n  port    = 8080\n"
	tests := []struct {
		name, src, summary string
		line               int // 0: no source range
	}{
		{"240 KB of [", svc + "  args = " + strings.Repeat("[", 240<<10) + "\n}\n", "Nesting too deep", 4},
		{"240 KB of {a=", svc + "  meta = " + strings.Repeat("{a=", 80<<10) + "\n}\n", "Nesting too deep", 4},
		{"240 KB of blocks", svc + strings.Repeat("b {\n", 60<<10), "Nesting too deep", 67},
		{"240 KB of ${", svc + "  args = [" + strings.Repeat(`"${`, 80<<10) + "\n}\n", "Nesting too deep", 4},
		{"2 MiB", svc + "}\n" + strings.Repeat("# padding padding padding padding padding padding\n", 2<<20/50), "Workloads file too large", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "workloads.hcl")
			if err := os.WriteFile(path, []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, diags := loadWorkloads(path)
			if len(diags) != 1 || diags[0].Summary != tt.summary {
				t.Fatalf("diagnostics %v, want one %q", diags, tt.summary)
			}
			d := diags[0]
			if !strings.Contains(d.Detail, path) {
				t.Errorf("detail %q does not name the file", d.Detail)
			}
			if tt.line > 0 && (d.Subject == nil || d.Subject.Start.Line != tt.line || !strings.Contains(d.Detail, "more than 64 levels")) {
				t.Errorf("subject %v, detail %q: want line %d and the limit", d.Subject, d.Detail, tt.line)
			}
			if tt.line == 0 && !strings.Contains(d.Detail, "1 MiB") {
				t.Errorf("detail %q does not give the limit", d.Detail)
			}
		})
	}
}

// A hostile workloads file written under a running adapter: it reports the
// problem with every snapshot and keeps the last good instances running.
func TestWorkloadsFileHostileKeepsRunning(t *testing.T) {
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 1}, "")
	good := mustRead(t, s.file)
	a := newTestAdapter(t)
	sdktest.ConfigureOK(t, a, s.request(t))
	events := watch(t, a)
	ev := sdktest.WaitFor(t, events, "api-0", waitTimeout, allPassing("api-0"))
	running := pids(ev)

	for name, tt := range map[string]struct{ src, summary string }{
		"deep": {strings.Replace(good, "port", "tags = "+strings.Repeat("[", 240<<10)+"\n  port", 1), "Nesting too deep"},
		"huge": {good + strings.Repeat("#", 2<<20), "Workloads file too large"},
	} {
		if err := os.WriteFile(s.file, []byte(tt.src), 0o644); err != nil {
			t.Fatal(err)
		}
		ev = sdktest.WaitFor(t, events, name+" diagnostics", waitTimeout, func(ev sdk.WatchEvent) bool { return sdk.HasErrors(ev.Diagnostics) })
		summaries := fileSummaries(ev)
		if want := []string{tt.summary, "Workloads file not applied"}; !reflect.DeepEqual(summaries, want) {
			t.Errorf("%s: diagnostics %q, want %q", name, summaries, want)
		}
		if !reflect.DeepEqual(pids(ev), running) {
			t.Errorf("%s: a hostile file changed the instances: %v -> %v", name, running, pids(ev))
		}
		// Back to the good file: the diagnostics clear, nothing restarts.
		if err := os.WriteFile(s.file, []byte(good), 0o644); err != nil {
			t.Fatal(err)
		}
		ev = sdktest.WaitFor(t, events, name+" fixed", waitTimeout, func(ev sdk.WatchEvent) bool { return len(fileSummaries(ev)) == 0 })
		if !reflect.DeepEqual(pids(ev), running) {
			t.Errorf("%s: instances changed: %v -> %v", name, running, pids(ev))
		}
	}
}

// fileSummaries returns the summaries of ev's diagnostics but the warning
// that the guard is off (the test setup turns it off; this test is about
// the workloads file).
func fileSummaries(ev sdk.WatchEvent) []string {
	var out []string
	for _, d := range ev.Diagnostics {
		if d.Summary != "Isolation off" {
			out = append(out, d.Summary)
		}
	}
	return out
}

// FuzzLoadWorkloads feeds arbitrary bytes to the workloads decoder: it
// must never panic or exhaust the stack, and every error must point at the
// file or say which it is.
func FuzzLoadWorkloads(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		for _, p := range paths {
			if src, err := os.ReadFile(p); err == nil {
				f.Add(src)
			}
		}
	}
	for _, open := range []string{"[", "{a=", "(", `"${`, "!", "true?1:", "%{if true}", "b {\n", "[*]"} {
		f.Add([]byte("service \"a\" {\n  command = \"x\"\n  port = 1\n  args = " + strings.Repeat(open, 2*maxWorkloadsDepth)))
		f.Add([]byte("service \"a\" {\n  args = " + strings.Repeat(open, 20000)))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		w, diags := parseWorkloads(src, "fuzz.hcl")
		if w == nil {
			t.Fatal("no workloads value")
		}
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Filename != "fuzz.hcl" {
				t.Fatalf("diagnostic %q names file %q", d.Summary, d.Subject.Filename)
			}
		}
		if !diags.HasErrors() {
			// What decoded must expand for an instance without error.
			for _, s := range w.Services {
				for _, e := range s.Args {
					if _, d := evalString(e, map[string]string{"HOST": "127.0.0.2"}, "args"); d.HasErrors() {
						t.Fatalf("args of %s: %v", s.Name, d)
					}
				}
			}
		}
	})
}
