package jobspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Job files that could exhaust the parser or the memory are refused before
// they are parsed, with a diagnostic naming the file, the limit and, for
// nesting, the line.
func TestRenderLimits(t *testing.T) {
	tests := []struct {
		name    string
		fixture string // in testdata/limits, or
		src     string // written by the test
		summary string
		line    int
	}{
		{name: "deep brackets", fixture: "deep_brackets.nomad", summary: "Nesting too deep", line: 3},
		{name: "deep objects", fixture: "deep_objects.nomad", summary: "Nesting too deep", line: 3},
		{name: "deep parentheses", fixture: "deep_parens.nomad", summary: "Nesting too deep", line: 3},
		{name: "deep templates", fixture: "deep_templates.nomad", summary: "Nesting too deep", line: 3},
		{name: "deep blocks", fixture: "deep_blocks.nomad", summary: "Nesting too deep", line: 3},
		{name: "240 KB of [", src: "job \"a\" {\n  x = " + strings.Repeat("[", 240<<10), summary: "Nesting too deep", line: 2},
		{name: "5 MiB", src: "job \"a\" {}\n" + strings.Repeat("# padding padding padding padding padding padding\n", 5<<20/50), summary: "Job file too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("testdata", "limits", tt.fixture)
			if tt.src != "" {
				path = filepath.Join(t.TempDir(), "job.nomad")
				if err := os.WriteFile(path, []byte(tt.src), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			src, diags := ReadFile(path)
			if src != nil || len(diags) != 1 || diags[0].Summary != tt.summary {
				t.Fatalf("ReadFile: %d bytes, diagnostics %v; want one %q", len(src), diags, tt.summary)
			}
			if d := diags[0]; tt.line > 0 && (d.Subject == nil || d.Subject.Filename != path || d.Subject.Start.Line != tt.line) {
				t.Errorf("subject %v, want %s line %d", d.Subject, path, tt.line)
			}
			if !strings.Contains(diags[0].Detail, path) {
				t.Errorf("detail %q does not name the file", diags[0].Detail)
			}
			// Render checks the same of a source in memory.
			if whole, err := os.ReadFile(path); err == nil {
				out, _, diags := Render(path, whole, defaults)
				if out != nil || len(diags) != 1 || diags[0].Summary != tt.summary {
					t.Errorf("Render: diagnostics %v, want one %q", diags, tt.summary)
				}
			}
		})
	}
}

// A for expression in a value the renderer evaluates is refused, not
// evaluated.
func TestRenderRefusesFor(t *testing.T) {
	list := "[" + strings.Repeat("1,", 1000) + "1]"
	src := strings.Replace(mustRead(t, filepath.Join("testdata", "stanza.nomad")), `memory       = 48`,
		`memory       = [for a in `+list+` : [for b in `+list+` : [for c in `+list+` : c]]]`, 1)
	_, _, diags := Render("job.nomad", []byte(src), defaults)
	if !strings.Contains(diags.Error(), "Not a literal value") {
		t.Fatalf("diagnostics %v, want the for expression refused", diags)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
