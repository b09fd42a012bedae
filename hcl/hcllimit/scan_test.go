package hcllimit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/inputlimit"
)

func TestDepth(t *testing.T) {
	const limit = 64
	r := strings.Repeat
	tests := []struct {
		name string
		src  string
		line int // 0: within the limit
	}{
		{"brackets at the limit", "x = " + r("[", 64) + r("]", 64) + "\n", 0},
		{"brackets past the limit", "\n\nx = " + r("[", 65) + r("]", 65) + "\n", 3},
		{"objects", "a = " + r("{a=", 65) + "1" + r("}", 65), 1},
		{"parentheses", "a = " + r("(", 65) + "1" + r(")", 65), 1},
		{"interpolations", "a = " + r(`"${`, 33) + "1" + r(`}"`, 33), 1},
		{"blocks", r("b {\n", 65) + r("}\n", 65), 65},
		{"template ifs", `a = "` + r("%{if true}", 65) + r("%{endif}", 65) + `"`, 1},
		{"template ifs in a row", `a = "` + r("%{if true}x%{endif}", 200) + `"`, 0},
		{"unary not", "a = " + r("!", 65) + "true", 1},
		{"unary minus", "a = " + r("-", 65) + "1", 1},
		{"conditionals", "a = " + r("true ? 1 : ", 65) + "1", 1},
		{"binary operators", "a = " + r("1 + ", 65) + "1", 1},
		{"splats", "a = x" + r("[*]", 65), 1},
		{"indexes", "a = x" + r("[y]", 65), 1},
		{"a long list", "a = [" + r("1, ", 10000) + "1]", 0},
		{"many attributes", r("a = 1 + 2 + 3\n", 10000), 0},
		{"many blocks", r("b { c { d = [1, [2]] } }\n", 10000), 0},
		{"brackets in strings", `a = "` + r("[{(", 1000) + `"`, 0},
		{"escaped quote in a string", `a = "\"` + r("[", 100) + `"`, 0},
		{"escaped interpolations", `a = "` + r("$${", 100) + r("%%{", 100) + `"`, 0},
		{"a newline does not end a string", "a = \"x\n" + r("[", 100) + "\"", 0},
		{"brackets in comments", "# " + r("[", 100) + "\n// " + r("(", 100) + "\n/* " + r("{", 100) + " */\na = 1", 0},
		{"brackets in a heredoc", "a = <<EOT\n" + r("[", 100) + "\n  EOT\nb = 1\n", 0},
		{"brackets after a heredoc", "a = <<-EOT\nx\nEOT\nb = " + r("[", 65), 4},
		{"a heredoc line with an interpolation is not its end", "a = <<EOT\n${1}EOT\n" + r("[", 100) + "\nEOT\n", 0},
		{"an unclosed string hides nothing", "a = \"" + r("[", 100), 0},
		{"brace in an interpolation ends it", `a = "${ [ }"` + " " + r("[", 65), 1},
		{"quote inside an interpolation", `a = "${"` + r("[", 100) + `"}"`, 0},
		{"unmatched closers do not lower the count", "a = " + r("[", 40) + r(")", 100) + r("[", 30), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Depth([]byte(tt.src), limit)
			var deep *inputlimit.TooDeepError
			if tt.line == 0 {
				if err != nil {
					t.Fatalf("Depth: %v, want nil", err)
				}
			} else {
				if !errors.As(err, &deep) {
					t.Fatalf("Depth: %v, want a *TooDeepError", err)
				}
				if deep.Line != tt.line || deep.Limit != limit {
					t.Errorf("line %d limit %d, want line %d limit %d", deep.Line, deep.Limit, tt.line, limit)
				}
			}
			assertNotBelowTokens(t, []byte(tt.src), limit, err)
		})
	}
}

// assertNotBelowTokens holds the byte scan to its promise: wherever HCL's
// own tokens go past the limit, so does the scan.
func assertNotBelowTokens(t *testing.T, src []byte, limit int, scanErr error) {
	t.Helper()
	if tokErr := tokenDepth(src, limit); tokErr != nil && scanErr == nil {
		t.Fatalf("the byte scan passed a source that HCL's tokens nest too deeply: %v", tokErr)
	}
}

func TestDepthExoticHeredocMarker(t *testing.T) {
	src := "a = <<ÉTÉ\n" + strings.Repeat("[", 100) + "\nÉTÉ\nb = " + strings.Repeat("[", 65) + "\n"
	var deep *inputlimit.TooDeepError
	if err := Depth([]byte(src), 64); !errors.As(err, &deep) || deep.Line != 4 {
		t.Fatalf("Depth: %v, want too deep at line 4", err)
	}
}

func TestDepthLargeHostileFiles(t *testing.T) {
	// The shapes that crashed or bloated the parser, at the size of the
	// files that did; each must be refused.
	n := 240 << 10
	for name, src := range map[string]string{
		"brackets": "a = " + strings.Repeat("[", n),
		"objects":  "a = " + strings.Repeat("{a=", n/3),
		"not":      "a = " + strings.Repeat("!", n),
		"blocks":   strings.Repeat("b {\n", n/4),
	} {
		if err := Depth([]byte(src), 64); !errors.Is(err, inputlimit.ErrTooDeep) {
			t.Errorf("%s: Depth = %v, want ErrTooDeep", name, err)
		}
	}
}

// FuzzDepth checks on arbitrary input that the byte scan never counts less
// than HCL's own tokens do.
func FuzzDepth(f *testing.F) {
	for _, s := range []string{
		"a = [[[]]]", `a = "${"${[]}"}"`, "a = <<EOT\n[[[\nEOT\n[[", "# [[\n[[", `a = "%{if x}[%{endif}"`,
		"a = !!!-1", "a = x[*][*]", "a = {a={a=1}}", "b { c { } }", `a = "\"[[["`, "/* [[[ */ [[",
	} {
		f.Add([]byte(s))
	}
	paths, _ := filepath.Glob("../testdata/*/*.hcl")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, limit := range []int{2, 4, 8} {
			assertNotBelowTokens(t, src, limit, Depth(src, limit))
		}
	})
}

// BenchmarkDepth scans a realistic policy of 1 MiB, the per-file limit.
func BenchmarkDepth(b *testing.B) {
	block := "service \"api\" {\n  protocol = \"http\"\n  upstream \"store\" { local_port = 9101 }\n" +
		"  route \"r\" {\n    match { path_prefix = \"/api/\"  methods = [\"GET\"] }\n    retry { attempts = 3 }\n  }\n}\n# a comment [with brackets]\n"
	src := []byte(strings.Repeat(block, (1<<20)/len(block)))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if err := Depth(src, 64); err != nil {
			b.Fatal(err)
		}
	}
}
