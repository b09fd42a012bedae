package policyhcl

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestWriteDiagnostics(t *testing.T) {
	src := map[string][]byte{
		"api.hcl": []byte("service \"api\" {\n\tupstream \"stor\" {\n\t\tlocal_port = 9101\n\t}\n}\nservice \"store\" {}\n"),
	}
	_, unknownUpstream, files := LoadSources(src)
	if len(unknownUpstream) != 1 {
		t.Fatalf("want one diagnostic, got %v", unknownUpstream)
	}
	_, noFiles, _ := Load()

	tests := []struct {
		name  string
		diags hcl.Diagnostics
		files map[string]*hcl.File
		color bool
		want  string
	}{
		{
			name:  "source line with tabs and underline",
			diags: unknownUpstream,
			files: files,
			want: "Error: Unknown upstream service\n" +
				"\n" +
				"  on api.hcl:2,11:\n" +
				"  2 | \tupstream \"stor\" {\n" +
				"    | \t         ^^^^^^\n" +
				"\n" +
				"Service \"api\" has an upstream \"stor\", but no service \"stor\" is declared. The\n" +
				"declared services are \"api\" and \"store\". Did you mean \"store\"? A service must\n" +
				"be declared with a service block (service \"stor\" { ... }) before anything can\n" +
				"refer to it.\n",
		},
		{
			name:  "color",
			diags: unknownUpstream,
			files: files,
			color: true,
			want: "\x1b[1m\x1b[31mError:\x1b[0m \x1b[1mUnknown upstream service\x1b[0m\n" +
				"\n" +
				"  on api.hcl:2,11:\n" +
				"  2 | \tupstream \"stor\" {\n" +
				"    | \t         \x1b[31m^^^^^^\x1b[0m\n" +
				"\n" +
				"Service \"api\" has an upstream \"stor\", but no service \"stor\" is declared. The\n" +
				"declared services are \"api\" and \"store\". Did you mean \"store\"? A service must\n" +
				"be declared with a service block (service \"stor\" { ... }) before anything can\n" +
				"refer to it.\n",
		},
		{
			name:  "file missing from the map",
			diags: unknownUpstream,
			files: nil,
			want: "Error: Unknown upstream service\n" +
				"\n" +
				"  on api.hcl:2,11:\n" +
				"\n" +
				"Service \"api\" has an upstream \"stor\", but no service \"stor\" is declared. The\n" +
				"declared services are \"api\" and \"store\". Did you mean \"store\"? A service must\n" +
				"be declared with a service block (service \"stor\" { ... }) before anything can\n" +
				"refer to it.\n",
		},
		{
			name:  "no subject",
			diags: noFiles,
			want: "Error: No policy files\n" +
				"\n" +
				"No *.hcl file was found in no path at all (none was given). An empty policy\n" +
				"would deny every connection; give a policy file or a directory that holds\n" +
				"some.\n",
		},
		{
			name: "warning, and a blank line between diagnostics",
			diags: hcl.Diagnostics{
				{Severity: hcl.DiagWarning, Summary: "First"},
				{Severity: hcl.DiagError, Summary: "Second", Detail: "Two\nparagraphs."},
			},
			want: "Warning: First\n\nError: Second\n\nTwo\nparagraphs.\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, tt.diags, tt.files, tt.color); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteDiagnosticsError(t *testing.T) {
	diags := hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Anything"}}
	if err := WriteDiagnostics(failingWriter{}, diags, nil, false); !errors.Is(err, errWrite) {
		t.Errorf("error %v, want one wrapping %v", err, errWrite)
	}
}

func TestSourceLine(t *testing.T) {
	src := []byte("a = 1\nname = \"héllo\" # x\r\nlast")
	pos := func(line, col, byte int) hcl.Pos { return hcl.Pos{Line: line, Column: col, Byte: byte} }
	tests := []struct {
		name       string
		rng        hcl.Range
		wantLine   string
		wantPrefix string
		wantWidth  int
	}{
		{"multibyte underline counts characters", hcl.Range{Start: pos(2, 8, 13), End: pos(2, 15, 21)}, "name = \"héllo\" # x", "       ", 7},
		{"empty range gets one caret", hcl.Range{Start: pos(1, 1, 0), End: pos(1, 1, 0)}, "a = 1", "", 1},
		{"multi-line range stops at line end", hcl.Range{Start: pos(1, 5, 4), End: pos(3, 2, 30)}, "a = 1", "    ", 1},
		{"last line without newline", hcl.Range{Start: pos(3, 1, 27), End: pos(3, 5, 31)}, "last", "", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, prefix, width, ok := sourceLine(src, tt.rng)
			if !ok || line != tt.wantLine || prefix != tt.wantPrefix || width != tt.wantWidth {
				t.Errorf("sourceLine = %q, %q, %d, %v; want %q, %q, %d, true", line, prefix, width, ok, tt.wantLine, tt.wantPrefix, tt.wantWidth)
			}
		})
	}
	if _, _, _, ok := sourceLine(src, hcl.Range{Start: pos(9, 1, 999)}); ok {
		t.Error("sourceLine accepted a range past the end of the source")
	}
}
