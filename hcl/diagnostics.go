package policyhcl

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/policy"
)

// detailWidth is where WriteDiagnostics wraps a diagnostic's detail.
const detailWidth = 78

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
)

// WriteDiagnostics renders every diagnostic for a terminal:
//
//	Error: Unknown upstream service
//
//	  on policy/api.hcl:7,12:
//	   7 |   upstream "stor" {
//	     |            ^^^^^^
//
//	Service "api" has an upstream "stor", but ...
//
// files supplies the source lines (as returned by Load); a diagnostic whose
// file is missing is rendered without its source line. With color, the
// severity and the underline are colored with ANSI escapes.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File, color bool) error {
	bw := bufio.NewWriter(w)
	for i, d := range diags {
		if i > 0 {
			bw.WriteString("\n")
		}
		writeDiagnostic(bw, d, files, color)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing diagnostics: %w", err)
	}
	return nil
}

func writeDiagnostic(w *bufio.Writer, d *hcl.Diagnostic, files map[string]*hcl.File, color bool) {
	severity, tint := "Error", ansiRed
	if d.Severity == hcl.DiagWarning {
		severity, tint = "Warning", ansiYellow
	}
	paint := func(codes, s string) string {
		if !color {
			return s
		}
		return codes + s + ansiReset
	}
	fmt.Fprintf(w, "%s %s\n", paint(ansiBold+tint, severity+":"), paint(ansiBold, d.Summary))

	if r := d.Subject; r != nil {
		fmt.Fprintf(w, "\n  on %s:%d,%d:\n", r.Filename, r.Start.Line, r.Start.Column)
		if f := files[r.Filename]; f != nil {
			if line, prefix, width, ok := sourceLine(f.Bytes, *r); ok {
				num := fmt.Sprint(r.Start.Line)
				pad := strings.Repeat(" ", len(num))
				fmt.Fprintf(w, "  %s | %s\n", num, line)
				fmt.Fprintf(w, "  %s | %s%s\n", pad, prefix, paint(tint, strings.Repeat("^", width)))
			}
		}
	}
	if d.Detail != "" {
		w.WriteString("\n")
		for _, para := range strings.Split(d.Detail, "\n") {
			if strings.HasPrefix(para, "  ") {
				// An indented line is an example to copy (a block of
				// HCL): written as it is.
				w.WriteString(para)
			} else {
				w.WriteString(wrap(para, detailWidth))
			}
			w.WriteString("\n")
		}
	}
}

// sourceLine returns the first line of r in src, the whitespace that puts
// an underline under r's start (tabs kept, so it lines up), and the
// underline's width in characters (at least 1; a range spanning lines is
// underlined to the end of its first line).
func sourceLine(src []byte, r hcl.Range) (line, prefix string, width int, ok bool) {
	lineStart := r.Start.Byte
	if lineStart < 0 || lineStart > len(src) {
		return "", "", 0, false
	}
	for lineStart > 0 && src[lineStart-1] != '\n' {
		lineStart--
	}
	lineEnd := bytes.IndexByte(src[lineStart:], '\n')
	if lineEnd < 0 {
		lineEnd = len(src)
	} else {
		lineEnd += lineStart
	}
	raw := strings.TrimRight(string(src[lineStart:lineEnd]), "\r")
	col := min(r.Start.Byte-lineStart, len(raw))
	end := len(raw)
	if r.End.Line == r.Start.Line && r.End.Byte-lineStart <= len(raw) {
		end = max(r.End.Byte-lineStart, col)
	}
	raw, col, end = clipLine(raw, col, end)
	var pb strings.Builder
	for _, c := range raw[:col] {
		if c == '\t' {
			pb.WriteRune('\t')
		} else {
			pb.WriteRune(' ')
		}
	}
	return raw, pb.String(), max(utf8.RuneCountInString(raw[col:end]), 1), true
}

// maxLineShown is the most bytes of a source line WriteDiagnostics shows.
const maxLineShown = 160

// clipLine cuts a long source line down to maxLineShown bytes around col
// (a generated or hostile file may be one line of a megabyte), marking the
// cuts with "...", and moves col and end to match.
func clipLine(raw string, col, end int) (string, int, int) {
	if len(raw) <= maxLineShown {
		return raw, col, end
	}
	from := max(col-maxLineShown/4, 0)
	for from > 0 && !utf8.RuneStart(raw[from]) {
		from--
	}
	to := min(from+maxLineShown, len(raw))
	for to < len(raw) && !utf8.RuneStart(raw[to]) {
		to--
	}
	out, shift := raw[from:to], 0
	if from > 0 {
		out, shift = "..."+out, 3-from
	} else {
		shift = 0
	}
	if to < len(raw) {
		out += "..."
	}
	col += shift
	end = min(end+shift, len(out))
	return out, col, max(end, col)
}

// wrap breaks s into lines of at most width characters at spaces; a word
// longer than width gets a line of its own.
func wrap(s string, width int) string {
	words := strings.Fields(s)
	var b strings.Builder
	n := 0
	for _, word := range words {
		wl := utf8.RuneCountInString(word)
		switch {
		case n == 0:
		case n+1+wl > width:
			b.WriteString("\n")
			n = 0
		default:
			b.WriteString(" ")
			n++
		}
		b.WriteString(word)
		n += wl
	}
	return b.String()
}

// Summary describes a compiled policy in one line, for example
// "3 services, 2 intentions, trust domain weft.local, default deny".
func Summary(p *policy.Policy) string {
	return fmt.Sprintf("%s, %s, trust domain %s, default %s",
		plural(len(p.Services), "service"), plural(len(p.Intentions), "intention"),
		p.Mesh.TrustDomain, p.Mesh.DefaultAction)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
