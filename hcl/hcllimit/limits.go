package hcllimit

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/weftmesh/weft/core/inputlimit"
)

// Limits bound one kind of HCL file.
type Limits struct {
	// Kind names the file in messages: "policy file", "workloads file".
	Kind string
	// Bytes is the largest file accepted.
	Bytes int64
	// Depth is the deepest nesting accepted, as Depth counts it.
	Depth int
}

// ReadFile reads the file at path within l.Bytes (never more than
// l.Bytes+1 bytes of it) and checks its nesting with Depth. On error the
// source is nil and the diagnostic names the file, the limit and what to
// do; an unreadable file gets a diagnostic with summary summary.
func ReadFile(path string, l Limits) ([]byte, hcl.Diagnostics) {
	src, err := inputlimit.ReadFile(path, l.Bytes)
	if err != nil {
		return nil, hcl.Diagnostics{Diagnostic(path, l, err)}
	}
	if diags := Check(path, src, l); diags.HasErrors() {
		return nil, diags
	}
	return src, nil
}

// Check checks a source already in memory against l.
func Check(filename string, src []byte, l Limits) hcl.Diagnostics {
	if int64(len(src)) > l.Bytes {
		return hcl.Diagnostics{Diagnostic(filename, l, &inputlimit.TooLargeError{Path: filename, Limit: l.Bytes})}
	}
	if err := Depth(src, l.Depth); err != nil {
		return hcl.Diagnostics{Diagnostic(filename, l, err)}
	}
	return nil
}

// Diagnostic turns an error of ReadFile or Depth into a diagnostic about
// filename. Other errors become "Cannot read <kind>".
func Diagnostic(filename string, l Limits, err error) *hcl.Diagnostic {
	var large *inputlimit.TooLargeError
	var deep *inputlimit.TooDeepError
	switch {
	case errors.As(err, &large):
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  capitalize(l.Kind) + " too large",
			Detail: fmt.Sprintf("%s is larger than %s, the limit for a %s, so it was not read. No %s needs to be that large: "+
				"split it into several files, or check that this is the file you meant.",
				filename, inputlimit.Bytes(large.Limit), l.Kind, l.Kind),
			Subject: &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		}
	case errors.As(err, &deep):
		pos := hcl.Pos{Line: deep.Line, Column: deep.Column, Byte: deep.Offset}
		end := hcl.Pos{Line: deep.Line, Column: deep.Column + 1, Byte: deep.Offset + 1}
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Nesting too deep",
			Detail: fmt.Sprintf("Here, at line %d, %s nests blocks, brackets, strings, templates or operators more than %d levels deep, "+
				"so it was not parsed (nesting that deep can only exhaust the parser). Flatten it: no %s needs more than a few levels.",
				deep.Line, filename, deep.Limit, l.Kind),
			Subject: &hcl.Range{Filename: filename, Start: pos, End: end},
		}
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Cannot read " + l.Kind,
		Detail:   fmt.Sprintf("Cannot read %s: %v. Check that the file exists and is readable.", filename, err),
	}
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// Literal reports the first for expression or template for directive in
// expr. They repeat their body once per element of a collection, and
// nested ones multiply: a few lines of them can ask the evaluator for
// billions of values. Files whose values are literals have no use for
// them, so callers check an expression with Literal before evaluating it.
func Literal(expr hcl.Expression) hcl.Diagnostics {
	e, ok := expr.(hclsyntax.Expression)
	if !ok {
		return nil
	}
	var diags hcl.Diagnostics
	_ = hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		if diags != nil {
			return nil // one is enough; a template for holds a for of its own
		}
		switch n := n.(type) {
		case *hclsyntax.ForExpr:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "For expressions not allowed",
				Detail:   "A for expression cannot be used here: write the values out as a literal list or map.",
				Subject:  n.Range().Ptr(),
				Context:  expr.Range().Ptr(),
			})
		case *hclsyntax.TemplateJoinExpr:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Template for directives not allowed",
				Detail:   "A %{ for } directive cannot be used here: write the text out in full.",
				Subject:  n.Range().Ptr(),
				Context:  expr.Range().Ptr(),
			})
		}
		return nil
	})
	return diags
}
