package policyhcl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// attrValue evaluates attr without variables or functions and converts the
// result to ty. A null or unknown result is returned as a null value without
// diagnostics of its own; callers treat it as "not set".
func attrValue(attr *hcl.Attribute, ty cty.Type) (cty.Value, hcl.Diagnostics) {
	val, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NullVal(ty), diags
	}
	if !val.IsWhollyKnown() {
		// Only a syntax error, already reported, makes a literal unknown.
		return cty.NullVal(ty), diags
	}
	if val.IsNull() {
		return cty.NullVal(ty), diags
	}
	conv, err := convert.Convert(val, ty)
	if err != nil { // the detail names both types, which says all err says
		rng := attr.Expr.Range()
		return cty.NullVal(ty), append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail: fmt.Sprintf("The argument %q must be a %s, but the given value is a %s. Give a %s literal.",
				attr.Name, ty.FriendlyName(), val.Type().FriendlyName(), ty.FriendlyName()),
			Subject: &rng,
			Context: attr.Range.Ptr(),
		})
	}
	return conv, diags
}

// decodeString decodes a string attribute. set is false when the value is
// null or could not be decoded (then diags say why).
func decodeString(attr *hcl.Attribute) (s string, set bool, diags hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.String)
	if val.IsNull() {
		return "", false, diags
	}
	return val.AsString(), true, diags
}

// decodeEnum decodes a string attribute that must be one of allowed. what
// names the value in the detail ("protocol"). A null value yields the zero
// value and set false.
func decodeEnum[T ~string](attr *hcl.Attribute, allowed []T, summary, what string) (v T, set bool, diags hcl.Diagnostics) {
	s, set, diags := decodeString(attr)
	if !set {
		return "", false, diags
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		if string(a) == s {
			return a, true, diags
		}
		names[i] = string(a)
	}
	detail := fmt.Sprintf("The %s %q is not supported. Use one of %s.", what, s, quoteList(names, "or"))
	if sugg := suggest(s, names); sugg != "" {
		detail += fmt.Sprintf(" Did you mean %q?", sugg)
	}
	rng := attr.Expr.Range()
	return "", false, append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  &rng,
		Context:  attr.Range.Ptr(),
	})
}

// missingArgument reports a required attribute whose value is null.
func missingArgument(attr *hcl.Attribute) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Missing required argument",
		Detail:   fmt.Sprintf("The argument %q is required and must not be null. Set it to a value.", attr.Name),
		Subject:  attr.Range.Ptr(),
	}
}

// quoteList renders names as `"a", "b" and "c"` (conj "and") or with "or".
func quoteList(names []string, conj string) string {
	q := quoted(names)
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}

// quoted returns names in double quotes.
func quoted(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return q
}

// suggest returns the name in names closest to given, if it is close enough
// to be a likely typo, or "".
func suggest(given string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(given, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b,
// in runes: insertions, deletions, substitutions and transpositions of
// neighbours each cost one, so "grcp" is closer to "grpc" than to "tcp".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// at formats a range's start for a detail message: "file.hcl:3".
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
}
