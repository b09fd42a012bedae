package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// Plan is what changes from one policy to another: per service and its
// parts (upstreams, subsets, routes, limits), per intention, and which
// caller -> service flows become allowed or denied.
type Plan struct {
	Services   []ServiceChange
	Intentions []Change
	Flows      []FlowChange
	Mesh       []string        // mesh-wide settings that change, as "name: old => new"
	Gateways   []ServiceChange // gateway.go
}

// Change kinds.
const (
	Added   = "+"
	Removed = "-"
	Changed = "~"
)

// Change is one added, removed or changed item, with the fields that
// changed.
type Change struct {
	Kind   string // Added, Removed, Changed
	What   string // `route "canary"`, `intention "web" -> "api"`
	Fields []string
}

// ServiceChange is a service's own change and its parts' changes.
type ServiceChange struct {
	Change
	Parts []Change
}

// FlowChange is a caller -> service pair whose decision changes.
type FlowChange struct {
	Source, Destination string
	Old, New            string // "allow", "deny", or "per request (N permissions)"
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool {
	return len(p.Services) == 0 && len(p.Intentions) == 0 && len(p.Flows) == 0 && len(p.Mesh) == 0 && len(p.Gateways) == 0
}

// Diff compares two policies. old may be nil (everything is new).
func Diff(old, new *Policy) *Plan {
	if old == nil {
		old = &Policy{Mesh: new.Mesh}
	}
	pl := &Plan{}
	if old.Mesh.TrustDomain != new.Mesh.TrustDomain {
		pl.Mesh = append(pl.Mesh, fmt.Sprintf("trust_domain: %s => %s", old.Mesh.TrustDomain, new.Mesh.TrustDomain))
	}
	if old.Mesh.DefaultAction != new.Mesh.DefaultAction {
		pl.Mesh = append(pl.Mesh, fmt.Sprintf("default_action: %s => %s", old.Mesh.DefaultAction, new.Mesh.DefaultAction))
	}
	if old.Mesh.IdentityBinding != new.Mesh.IdentityBinding {
		pl.Mesh = append(pl.Mesh, fmt.Sprintf("identity_binding: %s => %s", modeName(old.Mesh.IdentityBinding), modeName(new.Mesh.IdentityBinding)))
	}
	pl.Mesh = append(pl.Mesh, tracingDiff(old.Mesh.Tracing, new.Mesh.Tracing)...)
	if old.Mesh.Egress != new.Mesh.Egress {
		pl.Mesh = append(pl.Mesh, fmt.Sprintf("egress: %s => %s", egressName(old.Mesh.Egress), egressName(new.Mesh.Egress)))
	}
	pl.Mesh = append(pl.Mesh, jwtProvidersDiff(old.JWTProviders, new.JWTProviders)...)
	for _, name := range unionKeys(old.Services, new.Services) {
		o, inOld := old.Services[name]
		n, inNew := new.Services[name]
		what := fmt.Sprintf("service %q", name)
		switch {
		case !inOld:
			pl.Services = append(pl.Services, ServiceChange{Change: Change{Kind: Added, What: what}})
		case !inNew:
			pl.Services = append(pl.Services, ServiceChange{Change: Change{Kind: Removed, What: what}})
		default:
			sc := ServiceChange{Change: Change{Kind: Changed, What: what, Fields: fieldDiff(o, n, "Namespace", "Protocol", "Timeouts", "CircuitBreaker", "OutlierDetection", "ConnectionLimit", "Bindings", "HealthCheck", "External", "JWT")}}
			sc.Parts = append(sc.Parts, partsDiff("upstream", o.Upstreams, n.Upstreams, func(u Upstream) string { return u.Service })...)
			sc.Parts = append(sc.Parts, partsDiff("subset", o.Subsets, n.Subsets, func(s Subset) string { return s.Name })...)
			sc.Parts = append(sc.Parts, partsDiff("route", o.Routes, n.Routes, func(r Route) string { return r.Name })...)
			sc.Parts = append(sc.Parts, partsDiff("rate_limit", o.RateLimits, n.RateLimits, func(r RateLimit) string { return r.Name })...)
			if routeOrder(o.Routes) != routeOrder(n.Routes) && len(sc.Parts) == 0 {
				sc.Fields = append(sc.Fields, "route order")
			}
			if len(sc.Fields) > 0 || len(sc.Parts) > 0 {
				pl.Services = append(pl.Services, sc)
			}
		}
	}
	pl.Gateways = gatewaysDiff(old.Gateways, new.Gateways)
	key := func(in Intention) string { return fmt.Sprintf("%q -> %q", in.SourceName(), in.Destination) }
	for _, c := range partsDiff("intention", old.Intentions, new.Intentions, key) {
		pl.Intentions = append(pl.Intentions, c)
	}
	names := unionKeys(old.Services, new.Services)
	for _, src := range names {
		for _, dst := range names {
			_, srcOld := old.Services[src]
			_, dstOld := old.Services[dst]
			_, srcNew := new.Services[src]
			_, dstNew := new.Services[dst]
			if !srcNew || !dstNew {
				continue // a removed service: nothing flows
			}
			if new.Services[src].External != nil {
				continue // an external service calls nothing in the mesh
			}
			n := flow(new, src, dst)
			if !srcOld || !dstOld {
				if n != string(Deny) {
					pl.Flows = append(pl.Flows, FlowChange{Source: src, Destination: dst, Old: "none (new service)", New: n})
				}
				continue
			}
			if o := flow(old, src, dst); o != n {
				pl.Flows = append(pl.Flows, FlowChange{Source: src, Destination: dst, Old: o, New: n})
			}
		}
	}
	return pl
}

// flow describes what p does with calls from src to dst.
func flow(p *Policy, src, dst string) string {
	in := p.Winner(src, dst)
	if in == nil {
		return string(p.Mesh.DefaultAction)
	}
	if len(in.Permissions) == 0 {
		return string(in.Action)
	}
	b, _ := json.Marshal(in.Permissions)
	noun := "permissions"
	if len(in.Permissions) == 1 {
		noun = "permission"
	}
	return fmt.Sprintf("per request (%d %s, #%08x)", len(in.Permissions), noun, fnv32(b))
}

func fnv32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

func routeOrder(rs []Route) string {
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	return strings.Join(names, ",")
}

// partsDiff compares two lists of named parts.
func partsDiff[T any](kind string, old, new []T, name func(T) string) []Change {
	om, nm := map[string]T{}, map[string]T{}
	var order []string
	for _, x := range old {
		om[name(x)] = x
		order = append(order, name(x))
	}
	for _, x := range new {
		if _, ok := om[name(x)]; !ok {
			order = append(order, name(x))
		}
		nm[name(x)] = x
	}
	var out []Change
	for _, k := range order {
		o, inOld := om[k]
		n, inNew := nm[k]
		what := kind + " " + k
		if !strings.HasPrefix(k, `"`) {
			what = fmt.Sprintf("%s %q", kind, k)
		}
		switch {
		case !inOld:
			out = append(out, Change{Kind: Added, What: what})
		case !inNew:
			out = append(out, Change{Kind: Removed, What: what})
		default:
			if f := fieldDiff(o, n); len(f) > 0 {
				out = append(out, Change{Kind: Changed, What: what, Fields: f})
			}
		}
	}
	return out
}

// fieldDiff names the exported fields of two structs that differ (only
// those in only, when given).
func fieldDiff(a, b any, only ...string) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if len(only) > 0 && !contains(only, f.Name) {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, snake(f.Name))
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// snake turns a Go field name into the HCL word: RequestHeaders ->
// request_headers.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 && !(s[i-1] >= 'A' && s[i-1] <= 'Z') {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Write renders the plan for a terminal, like `nomad job plan`.
func (p *Plan) Write(w io.Writer) error {
	var b strings.Builder
	line := func(indent int, c Change) {
		fmt.Fprintf(&b, "%s%s %s", strings.Repeat("  ", indent), c.Kind, c.What)
		if len(c.Fields) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(c.Fields, ", "))
		}
		b.WriteString("\n")
	}
	for _, m := range p.Mesh {
		fmt.Fprintf(&b, "~ mesh %s\n", m)
	}
	var add, change, remove int
	for _, s := range p.Services {
		line(0, s.Change)
		for _, part := range s.Parts {
			line(1, part)
		}
		switch s.Kind {
		case Added:
			add++
		case Removed:
			remove++
		default:
			change++
		}
	}
	for _, s := range p.Gateways {
		line(0, s.Change)
		for _, part := range s.Parts {
			line(1, part)
		}
		switch s.Kind {
		case Added:
			add++
		case Removed:
			remove++
		default:
			change++
		}
	}
	for _, c := range p.Intentions {
		line(0, c)
		switch c.Kind {
		case Added:
			add++
		case Removed:
			remove++
		default:
			change++
		}
	}
	if len(p.Flows) > 0 {
		b.WriteString("\nFlows:\n")
		for _, f := range p.Flows {
			verb := "changes"
			switch {
			case strings.HasPrefix(f.Old, "per request") && strings.HasPrefix(f.New, "per request"):
				verb = "changes its permissions"
			case f.New == string(Allow):
				verb = "becomes allowed"
			case f.New == string(Deny):
				verb = "becomes denied"
			case strings.HasPrefix(f.New, "per request"):
				verb = "becomes decided per request"
			}
			fmt.Fprintf(&b, "  %s -> %s %s (%s => %s)\n", f.Source, f.Destination, verb, short(f.Old), short(f.New))
		}
	}
	if p.Empty() {
		b.WriteString("No changes.\n")
	} else {
		fmt.Fprintf(&b, "\nPlan: %d to add, %d to change, %d to remove; %d flows change.\n", add, change, remove, len(p.Flows))
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("writing the plan: %w", err)
	}
	return nil
}

// short drops the fingerprint of a per-request decision.
func short(s string) string {
	if i := strings.Index(s, ", #"); i > 0 {
		return s[:i] + ")"
	}
	return s
}

func modeName(m BindingMode) BindingMode {
	if m == "" {
		return BindingStrict
	}
	return m
}
