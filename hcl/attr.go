package policyhcl

import (
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/weftmesh/weft/hcl/hcllimit"
)

// attrValue evaluates attr without variables or functions and converts the
// result to ty. A null or unknown result is returned as a null value without
// diagnostics of its own; callers treat it as "not set".
func attrValue(attr *hcl.Attribute, ty cty.Type) (cty.Value, hcl.Diagnostics) {
	if diags := hcllimit.Literal(attr.Expr); diags.HasErrors() {
		return cty.NullVal(ty), diags
	}
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

// decodeDuration decodes a duration string such as "250ms" or "1m30s";
// it must be positive. set is false when the value is null or invalid.
func decodeDuration(attr *hcl.Attribute) (d time.Duration, set bool, diags hcl.Diagnostics) {
	s, set, diags := decodeString(attr)
	if !set {
		return 0, false, diags
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		rng := attr.Expr.Range()
		return 0, false, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid duration",
			Detail: fmt.Sprintf("The %s %q is not a positive duration. Write a number and a unit, such as \"250ms\", \"5s\" or \"1m30s\".",
				attr.Name, s),
			Subject: &rng,
			Context: attr.Range.Ptr(),
		})
	}
	return d, true, diags
}

// decodeInt decodes a whole number in [lo, hi]. set is false when the
// value is null or invalid.
func decodeInt(attr *hcl.Attribute, lo, hi int64, what string) (n int, set bool, diags hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.Number)
	if diags.HasErrors() || val.IsNull() {
		return 0, false, diags
	}
	bf := val.AsBigFloat()
	if bf.IsInt() {
		if v, acc := bf.Int64(); acc == big.Exact && v >= lo && v <= hi {
			return int(v), true, diags
		}
	}
	rng := attr.Expr.Range()
	return 0, false, append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid " + what,
		Detail:   fmt.Sprintf("The %s %s is out of range. Use a whole number from %d to %d.", what, numberText(bf), lo, hi),
		Subject:  &rng,
		Context:  attr.Range.Ptr(),
	})
}

// decodeBool decodes a bool attribute.
func decodeBool(attr *hcl.Attribute) (b bool, set bool, diags hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.Bool)
	if val.IsNull() {
		return false, false, diags
	}
	return val.True(), true, diags
}

// decodeStringList decodes a list of strings.
func decodeStringList(attr *hcl.Attribute) ([]string, hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.List(cty.String))
	if val.IsNull() {
		return nil, diags
	}
	var out []string
	for it := val.ElementIterator(); it.Next(); {
		_, v := it.Element()
		if v.IsNull() {
			rng := attr.Expr.Range()
			return nil, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Null list element",
				Detail:   fmt.Sprintf("The list %q holds a null. Remove it or give a string.", attr.Name),
				Subject:  &rng,
			})
		}
		out = append(out, v.AsString())
	}
	return out, diags
}

// decodeStringMap decodes a map of strings ({ version = "v2" }).
func decodeStringMap(attr *hcl.Attribute) (map[string]string, hcl.Diagnostics) {
	val, diags := attrValue(attr, cty.Map(cty.String))
	if val.IsNull() {
		return nil, diags
	}
	out := map[string]string{}
	for it := val.ElementIterator(); it.Next(); {
		k, v := it.Element()
		if v.IsNull() {
			rng := attr.Expr.Range()
			return nil, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Null map value",
				Detail:   fmt.Sprintf("The map %q has a null value for %q. Give a string.", attr.Name, k.AsString()),
				Subject:  &rng,
			})
		}
		out[k.AsString()] = v.AsString()
	}
	return out, diags
}

// errorAt is an error diagnostic on rng.
func errorAt(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// numberText formats a number for a message. A number far outside any
// range a policy uses is not written out: formatting 1e99999999 in full
// takes minutes.
func numberText(bf *big.Float) string {
	if bf.IsInf() {
		return bf.String()
	}
	if exp := bf.MantExp(nil); exp > 64 || exp < -64 {
		if bf.Sign() < 0 {
			return "(a negative number of huge magnitude)"
		}
		return "(a number of huge magnitude)"
	}
	return bf.Text('g', -1)
}
