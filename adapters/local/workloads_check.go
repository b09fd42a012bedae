package local

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Bounds and defaults of a service's check block.
const (
	defaultCheckInterval = time.Second
	defaultCheckTimeout  = time.Second
	minCheckInterval     = 100 * time.Millisecond
	maxCheckInterval     = time.Hour
	maxCheckPath         = 1024
)

// checkSpec is a service's `check { ... }` block: the adapter probes
// every instance's app, on its address and port, every Interval.
type checkSpec struct {
	// HTTP is the path of an HTTP GET that must answer 2xx ("" for a TCP
	// check).
	HTTP string
	// TCP: a TCP connection to the app's port must open.
	TCP      bool
	Interval time.Duration
	Timeout  time.Duration
}

var checkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "http"},
		{Name: "tcp"},
		{Name: "interval"},
		{Name: "timeout"},
	},
}

const checkHelp = "A check is `check { http = \"/healthz\" }` (an HTTP GET of that path on the app's address and port must answer 2xx) or `check { tcp = true }` (a connection to the app's port must open), with optional interval (default 1s, from 100ms to 1h) and timeout (default 1s, at most the interval)."

// decodeCheckBlocks decodes a service's check blocks: at most one.
func decodeCheckBlocks(blocks hcl.Blocks) (*checkSpec, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var spec *checkSpec
	for i, b := range blocks {
		if i > 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate check",
				Detail:   fmt.Sprintf("This service already has a check block at %s; a service has at most one. %s", at(blocks[0].DefRange), checkHelp),
				Subject:  b.DefRange.Ptr(),
			})
			continue
		}
		s, d := decodeCheck(b)
		diags = append(diags, d...)
		spec = s
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return spec, diags
}

func decodeCheck(b *hcl.Block) (*checkSpec, hcl.Diagnostics) {
	content, diags := b.Body.Content(checkSchema)
	attrs := content.Attributes
	s := &checkSpec{Interval: defaultCheckInterval}
	bad := func(a *hcl.Attribute, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail + " " + checkHelp, Subject: a.Expr.Range().Ptr()})
	}
	if a := attrs["http"]; a != nil {
		p, d := decodeString(a)
		diags = append(diags, d...)
		switch {
		case d.HasErrors():
		case !strings.HasPrefix(p, "/") || len(p) > maxCheckPath || strings.ContainsAny(p, " \t\r\n#") || strings.HasPrefix(p, "//"):
			bad(a, "Invalid check path", fmt.Sprintf("http = %q is not a path on the app: start it with one /, at most %d characters, no spaces or #.", truncate(p, 80), maxCheckPath))
		default:
			s.HTTP = p
		}
	}
	if a := attrs["tcp"]; a != nil {
		v, d := attrValue(a, cty.Bool)
		diags = append(diags, d...)
		if !d.HasErrors() && !v.IsNull() {
			s.TCP = v.True()
		}
	}
	if !diags.HasErrors() && (s.HTTP != "") == s.TCP {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "A check needs one kind",
			Detail:   "This check gives neither `http` nor `tcp = true`, or both. " + checkHelp,
			Subject:  b.DefRange.Ptr(),
		})
	}
	duration := func(name string, lo, hi time.Duration) (time.Duration, *hcl.Attribute) {
		a := attrs[name]
		if a == nil {
			return 0, nil
		}
		v, d := decodeString(a)
		diags = append(diags, d...)
		if d.HasErrors() {
			return 0, a
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur < lo || dur > hi {
			bad(a, "Invalid check "+name, fmt.Sprintf("%s = %q: give a duration from %v to %v, such as \"1s\".", name, truncate(v, 40), lo, hi))
			return 0, a
		}
		return dur, a
	}
	if d, _ := duration("interval", minCheckInterval, maxCheckInterval); d > 0 {
		s.Interval = d
	}
	s.Timeout = min(defaultCheckTimeout, s.Interval)
	if d, a := duration("timeout", time.Millisecond, maxCheckInterval); d > 0 {
		if d > s.Interval {
			bad(a, "Invalid check timeout", fmt.Sprintf("timeout = %v is longer than the interval %v: a check must end before the next starts.", d, s.Interval))
		}
		s.Timeout = d
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return s, diags
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
