package policyhcl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the decoder: it must never panic, must
// return a policy exactly when there is no error, and every error must
// point at the file.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid", "testdata/limits"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		for _, p := range paths {
			if src, err := os.ReadFile(p); err == nil {
				f.Add(src)
			}
		}
	}
	f.Add([]byte(`service "a" { protocol = "http" route "r" { match { path_regex = "(" } } }`))
	// Deep nesting of every kind, past MaxDepth: the pre-scan must refuse
	// it before the parser recurses.
	for _, open := range []string{"[", "{a=", "(", `"${`, "!", "-", "true?1:", "%{if true}", "b {\n", "[*]"} {
		f.Add([]byte("x = " + strings.Repeat(open, 2*MaxDepth)))
		f.Add([]byte("x = " + strings.Repeat(open, 20000)))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, diags, files := LoadSources(map[string][]byte{"fuzz.hcl": src})
		if diags.HasErrors() != (p == nil) {
			t.Fatalf("policy %v with errors %v", p != nil, diags.HasErrors())
		}
		for _, d := range diags {
			if d.Subject != nil && files[d.Subject.Filename] == nil {
				t.Fatalf("diagnostic %q names unknown file %q", d.Summary, d.Subject.Filename)
			}
		}
	})
}
