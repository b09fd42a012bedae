package policyhcl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestLoadLimits: every file that could exhaust the parser or the memory
// is refused before it is parsed, with a diagnostic that names the file,
// the line (for nesting) and the limit, and no policy comes back.
func TestLoadLimits(t *testing.T) {
	big := func(t *testing.T, dir string) {
		// A valid policy, padded with comments to 2 MiB.
		src := `service "api" {}` + "\n" + strings.Repeat("# padding padding padding padding padding padding\n", 2<<20/50)
		write(t, filepath.Join(dir, "big.hcl"), src)
	}
	many := func(t *testing.T, dir string) {
		for i := range MaxFiles + 1 {
			write(t, filepath.Join(dir, fmt.Sprintf("s%04d.hcl", i)), fmt.Sprintf("service \"s%d\" {}\n", i))
		}
	}
	total := func(t *testing.T, dir string) {
		// Five files just under the per-file limit: past the total.
		pad := strings.Repeat("# padding padding padding padding padding padding\n", (MaxFileBytes-100)/50)
		for i := range 5 {
			write(t, filepath.Join(dir, fmt.Sprintf("s%d.hcl", i)), fmt.Sprintf("service \"s%d\" {}\n%s", i, pad))
		}
	}
	tests := []struct {
		name    string
		fixture string                         // a file of testdata/limits, or
		make    func(t *testing.T, dir string) // a directory made by the test
		summary string
		line    int    // of the diagnostic's subject; 0: none
		detail  string // a part of the detail
	}{
		{name: "deep brackets", fixture: "deep_brackets.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "deep objects", fixture: "deep_objects.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "deep parentheses", fixture: "deep_parens.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "deep templates", fixture: "deep_templates.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "deep template directives", fixture: "deep_directives.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "deep blocks", fixture: "deep_blocks.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "deep negation", fixture: "deep_not.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "deep conditionals", fixture: "deep_conditional.hcl", summary: "Nesting too deep", line: 3, detail: "more than 64 levels"},
		{name: "a 2 MiB file", make: big, summary: "Policy file too large", detail: "larger than 1 MiB"},
		{name: "too many files", make: many, summary: "Too many policy files", detail: "at most 1000"},
		{name: "too much policy in all", make: total, summary: "Policy too large", detail: "past 4 MiB in all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("testdata", "limits", tt.fixture)
			if tt.make != nil {
				path = t.TempDir()
				tt.make(t, path)
			}
			p, diags, files := Load(path)
			if p != nil {
				t.Fatal("Load returned a policy despite the limit")
			}
			d := findDiag(diags, tt.summary)
			if d == nil {
				t.Fatalf("no %q diagnostic in:\n%v", tt.summary, diags)
			}
			if !strings.Contains(d.Detail, tt.detail) {
				t.Errorf("detail %q does not say %q", d.Detail, tt.detail)
			}
			if tt.line > 0 {
				if d.Subject == nil || d.Subject.Filename != path || d.Subject.Start.Line != tt.line {
					t.Fatalf("subject %v, want %s line %d", d.Subject, path, tt.line)
				}
				var out bytes.Buffer
				if err := WriteDiagnostics(&out, diags, files, false); err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("on %s:%d,", path, tt.line); !strings.Contains(out.String(), want) {
					t.Errorf("rendered diagnostics do not say %q:\n%s", want, out.String())
				}
				if len(out.String()) > 4000 {
					t.Errorf("rendered diagnostics are %d bytes: the long line must be clipped", out.Len())
				}
			}
		})
	}
}

// TestLoadLimitsNotInStrings: brackets in comments, strings and regular
// expressions do not count.
func TestLoadLimitsNotInStrings(t *testing.T) {
	_, diags, _ := Load(filepath.Join("testdata", "limits", "ok_strings.hcl"))
	if d := findDiag(diags, "Nesting too deep"); d != nil {
		t.Fatalf("nesting inside strings and comments counted: %s", d.Detail)
	}
}

// TestLoadHostileSizes: the shapes that crashed the controller (a 240 KB
// file of "[" or "{a=", a 10 MB file) come back as diagnostics.
func TestLoadHostileSizes(t *testing.T) {
	for name, src := range map[string]string{
		"brackets":  "x = " + strings.Repeat("[", 240<<10),
		"objects":   "x = " + strings.Repeat("{a=", 80<<10),
		"not":       "x = " + strings.Repeat("!", 240<<10) + "true",
		"ten MB":    strings.Repeat("service \"a\" {}\n", 10<<20/15),
		"one line":  "x = [" + strings.Repeat("1,", 2<<20) + "]",
		"templates": "x = " + strings.Repeat(`"${`, 80<<10),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "p.hcl"), src)
			p, diags, _ := Load(dir)
			if p != nil || !diags.HasErrors() {
				t.Fatalf("policy %v, diagnostics %v", p != nil, diags)
			}
		})
	}
}

// TestLoadRefusesFor: for expressions and template for directives, which
// let a few lines ask for billions of values, are refused before they are
// evaluated.
func TestLoadRefusesFor(t *testing.T) {
	list := "[" + strings.Repeat("1,", 1000) + "1]"
	for name, src := range map[string]string{
		"for expression": "service \"api\" {\n protocol = \"http\"\n route \"r\" {\n match {\n methods = [for a in " + list + " : [for b in " + list + " : [for c in " + list + " : c]]]\n }\n }\n}\n",
		"for directive":  `mesh { trust_domain = "%{for a in ` + list + `}%{for b in ` + list + `}%{for c in ` + list + `}x%{endfor}%{endfor}%{endfor}" }`,
	} {
		t.Run(name, func(t *testing.T) {
			_, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(src)})
			if findDiag(diags, "For expressions not allowed") == nil && findDiag(diags, "Template for directives not allowed") == nil {
				t.Fatalf("no diagnostic about for in:\n%v", diags)
			}
		})
	}
}

// TestLoadHugeNumber: a number far out of range is reported without being
// written out in full (which takes minutes).
func TestLoadHugeNumber(t *testing.T) {
	src := "service \"api\" {\n  circuit_breaker {\n    max_connections = 1.5e99999999\n  }\n}\n"
	_, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(src)})
	if !diags.HasErrors() {
		t.Fatal("no error for a huge number")
	}
}

func findDiag(diags hcl.Diagnostics, summary string) *hcl.Diagnostic {
	for _, d := range diags {
		if d.Summary == summary {
			return d
		}
	}
	return nil
}

func write(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}
