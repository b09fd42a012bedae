package local

import (
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/hcl/hcllimit"
)

// The sidecar's ports on every instance address. A service's own port must
// not take them.
const (
	meshPort  = 15001
	adminPort = 15000
)

// requiredHelp completes HCL's message for a missing required argument.
const requiredHelp = "Every service needs `command` (the program to run) and `port` (where it listens on its instance address)."

// maxInstances bounds `instances` so that a typo cannot ask for thousands of
// processes.
const maxInstances = 100

// Variables that args and env values may use, as ${NAME}. The adapter
// expands them per instance.
var templateVars = []string{"HOST", "PORT", "WEFT_SERVICE", "WEFT_INSTANCE", "WEFT_NAMESPACE"}

// reservedEnv are set by the adapter; the file may not set them in env.
var reservedEnv = map[string]bool{
	"HOST": true, "PORT": true, "WEFT_SERVICE": true, "WEFT_INSTANCE": true,
	"WEFT_NAMESPACE": true, "WEFT_JOIN_TOKEN": true,
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// workloads is a decoded workloads file.
type workloads struct {
	// Filename is the path the file was read from, as given.
	Filename string
	// Dir is the absolute directory of the file; relative commands resolve
	// against it and apps run in it.
	Dir      string
	Services []*service // sorted by name
}

// service is one `service "name" { ... }` block. Its label names the
// workload (policy binds services to it: binding "local" { name = ... });
// the service it serves is the label too, unless `service` names another.
type service struct {
	Name      string
	Service   string // the service the instances serve: `service`, else Name
	Command   string
	Args      []hcl.Expression // each evaluates to a string per instance
	Env       []envVar         // in file order
	Instances int
	Port      int
	Namespace string
	Meta      map[string]string
	Tags      []string
	Check     *checkSpec // nil: no check block
	// ProxyMode is ProxyModeSidecar (the default), ProxyModeNode or ProxyModeApplication
	// (workloads_proxymode.go).
	ProxyMode string

	DeclRange    hcl.Range
	CommandRange hcl.Range
	PortRange    hcl.Range
}

type envVar struct {
	Name  string
	Value hcl.Expression
}

var workloadsSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "service", LabelNames: []string{"name"}}},
}

var serviceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "command", Required: true},
		{Name: "args"},
		{Name: "env"},
		{Name: "instances"},
		{Name: "port", Required: true},
		{Name: "namespace"},
		{Name: "service"},
		{Name: "meta"},
		{Name: "tags"},
		{Name: "proxy_mode"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "check"}},
}

// The limits of a workloads file, checked before it is parsed: a file of
// a hundred services is a few KiB and nests four levels deep, so a real
// one never comes near them, and anything past them is refused with a
// diagnostic instead of exhausting the adapter's parser (see
// hcl/hcllimit).
const (
	maxWorkloadsBytes = 1 << 20
	maxWorkloadsDepth = 64
)

var workloadsLimits = hcllimit.Limits{Kind: "workloads file", Bytes: maxWorkloadsBytes, Depth: maxWorkloadsDepth}

// loadWorkloads reads and decodes the workloads file at path.
func loadWorkloads(path string) (*workloads, hcl.Diagnostics) {
	src, diags := readWorkloads(path)
	if diags.HasErrors() {
		return nil, diags
	}
	return parseWorkloads(src, path)
}

// readWorkloads reads the workloads file at path, never more than
// maxWorkloadsBytes+1 bytes of it.
func readWorkloads(path string) ([]byte, hcl.Diagnostics) {
	src, err := inputlimit.ReadFile(path, maxWorkloadsBytes)
	if errors.Is(err, inputlimit.ErrTooLarge) {
		return nil, hcl.Diagnostics{hcllimit.Diagnostic(path, workloadsLimits, err)}
	}
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read workloads file",
			Detail:   fmt.Sprintf("Reading %s: %v. Give the path of an HCL file with service blocks.", path, err),
		}}
	}
	return src, nil
}

// parseWorkloads decodes a workloads file's source. Diagnostics accumulate
// so that a user sees every problem at once; services with errors are left
// out of the result.
func parseWorkloads(src []byte, filename string) (*workloads, hcl.Diagnostics) {
	w := &workloads{Filename: filename}
	abs, err := filepath.Abs(filename)
	if err != nil {
		abs = filename
	}
	w.Dir = filepath.Dir(abs)

	// A file that could exhaust the parser is not parsed.
	if diags := hcllimit.Check(filename, src, workloadsLimits); diags.HasErrors() {
		return w, diags
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return w, diags
	}
	content, d := f.Body.Content(workloadsSchema)
	diags = append(diags, d...)

	seen := map[string]*service{}
	for _, b := range content.Blocks {
		s, d := decodeServiceBlock(b)
		diags = append(diags, d...)
		if s == nil {
			continue
		}
		if prev, ok := seen[s.Name]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate service",
				Detail: fmt.Sprintf("Service %q is already declared at %s. Give each service block its own name, or raise `instances` of the first one.",
					s.Name, at(prev.DeclRange)),
				Subject: b.LabelRanges[0].Ptr(),
				Context: b.DefRange.Ptr(),
			})
			continue
		}
		seen[s.Name] = s
		w.Services = append(w.Services, s)
	}
	if len(content.Blocks) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "No services",
			Detail:   fmt.Sprintf("%s declares no service blocks, so the local adapter runs nothing. Add a `service \"name\" { command = ... port = ... }` block.", filename),
			Subject:  f.Body.(*hclsyntax.Body).SrcRange.Ptr(),
		})
	}
	sort.Slice(w.Services, func(i, j int) bool { return w.Services[i].Name < w.Services[j].Name })
	sortDiags(diags)
	return w, diags
}

// sortDiags puts diagnostics in reading order.
func sortDiags(diags hcl.Diagnostics) {
	pos := func(d *hcl.Diagnostic) (int, int) {
		if d.Subject == nil {
			return 1 << 30, 0
		}
		return d.Subject.Start.Line, d.Subject.Start.Column
	}
	sort.SliceStable(diags, func(i, j int) bool {
		li, ci := pos(diags[i])
		lj, cj := pos(diags[j])
		return li < lj || li == lj && ci < cj
	})
}

// decodeServiceBlock decodes one service block. It returns nil when the
// block has errors.
func decodeServiceBlock(b *hcl.Block) (*service, hcl.Diagnostics) {
	s := &service{Name: b.Labels[0], Instances: 1, DeclRange: b.DefRange}
	var diags hcl.Diagnostics
	if !model.ValidName(s.Name) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid service name",
			Detail: fmt.Sprintf("Service name %q cannot be used: it becomes a SPIFFE identity and a DNS label, so use lower-case letters, digits and dashes, starting and ending with a letter or digit, at most 63 characters.",
				s.Name),
			Subject: b.LabelRanges[0].Ptr(),
		})
	}
	content, d := b.Body.Content(serviceSchema)
	for _, x := range d {
		if x.Summary == "Missing required argument" {
			x.Detail += " " + requiredHelp
		}
	}
	diags = append(diags, d...)
	attrs := content.Attributes

	if a := attrs["command"]; a != nil {
		s.CommandRange = a.Expr.Range()
		cmd, d := decodeString(a)
		diags = append(diags, d...)
		if !d.HasErrors() && strings.TrimSpace(cmd) == "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Empty command",
				Detail:   "The argument \"command\" must name the program to run: a path (relative to the workloads file's directory) or a name found in PATH.",
				Subject:  a.Expr.Range().Ptr(),
			})
		}
		s.Command = cmd
	}
	if a := attrs["args"]; a != nil {
		elems, d := hcl.ExprList(a.Expr)
		if d.HasErrors() {
			diags = append(diags, listWanted(a))
		}
		for _, e := range elems {
			diags = append(diags, checkTemplate(e, "args")...)
		}
		s.Args = elems
	}
	if a := attrs["env"]; a != nil {
		env, d := decodeEnv(a)
		diags = append(diags, d...)
		s.Env = env
	}
	if a := attrs["instances"]; a != nil {
		n, d := decodeInt(a, 1, maxInstances, "Invalid instance count",
			fmt.Sprintf("`instances` is how many copies of the service to run: a whole number from 1 to %d.", maxInstances))
		diags = append(diags, d...)
		s.Instances = n
	}
	if a := attrs["port"]; a != nil {
		s.PortRange = a.Expr.Range()
		n, d := decodeInt(a, 1, 65535, "Invalid port",
			"`port` is where the app listens on its instance address: a whole number from 1 to 65535.")
		diags = append(diags, d...)
		if !d.HasErrors() && (n == meshPort || n == adminPort) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Port reserved for the sidecar",
				Detail: fmt.Sprintf("Port %d is taken by the sidecar on every instance address (%d is its mesh port, %d its admin port). Choose another `port` for the app.",
					n, meshPort, adminPort),
				Subject: a.Expr.Range().Ptr(),
			})
		}
		s.Port = n
	}
	if a := attrs["namespace"]; a != nil {
		ns, d := decodeString(a)
		diags = append(diags, d...)
		if !d.HasErrors() && ns != "" && !model.ValidName(ns) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid namespace",
				Detail:   fmt.Sprintf("Namespace %q cannot be used: use lower-case letters, digits and dashes, at most 63 characters, or leave `namespace` out for %q.", ns, model.DefaultNamespace),
				Subject:  a.Expr.Range().Ptr(),
			})
		}
		s.Namespace = ns
	}
	s.Service = s.Name
	if a := attrs["service"]; a != nil {
		svc, d := decodeString(a)
		diags = append(diags, d...)
		if !d.HasErrors() && !model.ValidName(svc) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid service name",
				Detail:   fmt.Sprintf("Service name %q cannot be used: use lower-case letters, digits and dashes, at most 63 characters, or leave `service` out to serve the service named by the block's label.", svc),
				Subject:  a.Expr.Range().Ptr(),
			})
		}
		s.Service = svc
	}
	mode, d := decodeProxyMode(attrs["proxy_mode"])
	diags = append(diags, d...)
	s.ProxyMode = mode
	if a := attrs["meta"]; a != nil {
		v, d := attrValue(a, cty.Map(cty.String))
		diags = append(diags, d...)
		if !v.IsNull() {
			s.Meta = map[string]string{}
			for k, e := range v.AsValueMap() {
				if e.IsNull() {
					diags = append(diags, nullElement(a, k))
					continue
				}
				s.Meta[k] = e.AsString()
			}
		}
	}
	if a := attrs["tags"]; a != nil {
		v, d := attrValue(a, cty.List(cty.String))
		diags = append(diags, d...)
		if !v.IsNull() {
			for _, e := range v.AsValueSlice() {
				if e.IsNull() {
					diags = append(diags, nullElement(a, "a tag"))
					continue
				}
				s.Tags = append(s.Tags, e.AsString())
			}
		}
	}
	check, d := decodeCheckBlocks(content.Blocks.OfType("check"))
	diags = append(diags, d...)
	s.Check = check
	if diags.HasErrors() {
		return nil, diags
	}
	return s, diags
}

// decodeEnv decodes `env = { NAME = "value" }`. Values stay expressions
// because they may use ${HOST} and the like, which differ per instance.
func decodeEnv(a *hcl.Attribute) ([]envVar, hcl.Diagnostics) {
	pairs, d := hcl.ExprMap(a.Expr)
	if d.HasErrors() {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid env",
			Detail:   "The argument \"env\" must be a map written in place, like env = { NAME = \"value\" }.",
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	var diags hcl.Diagnostics
	var env []envVar
	seen := map[string]bool{}
	for _, p := range pairs {
		kv, d := p.Key.Value(nil)
		if d = append(hcllimit.Literal(p.Key), d...); d.HasErrors() || kv.IsNull() || !kv.IsKnown() || kv.Type() != cty.String {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid environment variable name",
				Detail:   "Environment variable names in env must be plain names like STORE_URL.",
				Subject:  p.Key.Range().Ptr(),
			})
			continue
		}
		name := kv.AsString()
		switch {
		case !envName.MatchString(name):
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid environment variable name",
				Detail:   fmt.Sprintf("%q is not a usable environment variable name: use letters, digits and underscores, not starting with a digit.", name),
				Subject:  p.Key.Range().Ptr(),
			})
			continue
		case reservedEnv[name]:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Reserved environment variable",
				Detail:   fmt.Sprintf("The local adapter sets %s itself for every instance. Remove it from env; use ${%s} in a value to refer to it.", name, name),
				Subject:  p.Key.Range().Ptr(),
			})
			continue
		case seen[name]:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate environment variable",
				Detail:   fmt.Sprintf("%s is set twice in env. Keep one.", name),
				Subject:  p.Key.Range().Ptr(),
			})
			continue
		}
		seen[name] = true
		diags = append(diags, checkTemplate(p.Value, "env")...)
		env = append(env, envVar{Name: name, Value: p.Value})
	}
	return env, diags
}

// evalContext offers the per-instance template variables. With vars nil,
// every variable is an unknown string, which checks an expression without
// an instance.
func evalContext(vars map[string]string) *hcl.EvalContext {
	m := map[string]cty.Value{}
	for _, name := range templateVars {
		if vars == nil {
			m[name] = cty.UnknownVal(cty.String)
		} else {
			m[name] = cty.StringVal(vars[name])
		}
	}
	return &hcl.EvalContext{Variables: m}
}

// checkTemplate reports whether e can become a string for any instance.
func checkTemplate(e hcl.Expression, attr string) hcl.Diagnostics {
	_, diags := evalString(e, nil, attr)
	return diags
}

// evalString evaluates an args element or env value for one instance.
func evalString(e hcl.Expression, vars map[string]string, attr string) (string, hcl.Diagnostics) {
	if diags := hcllimit.Literal(e); diags.HasErrors() {
		return "", diags
	}
	v, diags := e.Value(evalContext(vars))
	for _, d := range diags {
		if d.Summary == "Unknown variable" {
			d.Detail += fmt.Sprintf(" In %s, values may use ${%s}; write $${ for a literal ${.", attr, strings.Join(templateVars, "}, ${"))
		}
	}
	if diags.HasErrors() {
		return "", diags
	}
	if v.IsNull() {
		return "", append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Null value",
			Detail:   fmt.Sprintf("Values in %s must be strings, not null.", attr),
			Subject:  e.Range().Ptr(),
		})
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		return "", append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect value type",
			Detail:   fmt.Sprintf("Values in %s must be strings; this one is a %s. Quote it.", attr, v.Type().FriendlyName()),
			Subject:  e.Range().Ptr(),
		})
	}
	if !s.IsKnown() {
		return "", diags
	}
	return s.AsString(), diags
}

// attrValue evaluates a literal attribute (no variables) and converts it to
// ty. A null result comes back as a null value without diagnostics.
func attrValue(a *hcl.Attribute, ty cty.Type) (cty.Value, hcl.Diagnostics) {
	if diags := hcllimit.Literal(a.Expr); diags.HasErrors() {
		return cty.NullVal(ty), diags
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || v.IsNull() || !v.IsWhollyKnown() {
		return cty.NullVal(ty), diags
	}
	c, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NullVal(ty), append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail: fmt.Sprintf("The argument %q must be a %s, but this is a %s. Write a %s.",
				a.Name, ty.FriendlyName(), v.Type().FriendlyName(), ty.FriendlyName()),
			Subject: a.Expr.Range().Ptr(),
		})
	}
	return c, diags
}

func decodeString(a *hcl.Attribute) (string, hcl.Diagnostics) {
	v, diags := attrValue(a, cty.String)
	if v.IsNull() {
		if !diags.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing value",
				Detail:   fmt.Sprintf("The argument %q must be a string, not null.", a.Name),
				Subject:  a.Expr.Range().Ptr(),
			})
		}
		return "", diags
	}
	return v.AsString(), diags
}

// decodeInt decodes a whole number in [lo, hi]; summary and help make the
// diagnostic when it is not one.
func decodeInt(a *hcl.Attribute, lo, hi int64, summary, help string) (int, hcl.Diagnostics) {
	v, diags := attrValue(a, cty.Number)
	if diags.HasErrors() {
		return 0, diags
	}
	bad := func(got string) (int, hcl.Diagnostics) {
		return 0, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  summary,
			Detail:   fmt.Sprintf("%s is not allowed here: %s", got, help),
			Subject:  a.Expr.Range().Ptr(),
		})
	}
	if v.IsNull() {
		return bad("null")
	}
	// Int64 and a short format only: a literal like 1e999999999 is an
	// integer whose full decimal form takes minutes and gigabytes.
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact || n < lo || n > hi {
		return bad(numberText(bf))
	}
	return int(n), diags
}

func listWanted(a *hcl.Attribute) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid args",
		Detail:   "The argument \"args\" must be a list of strings written in place, like args = [\"--name\", \"api\"].",
		Subject:  a.Expr.Range().Ptr(),
	}
}

func nullElement(a *hcl.Attribute, what string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Null value",
		Detail:   fmt.Sprintf("%s in %q is null; give it a string or remove it.", what, a.Name),
		Subject:  a.Expr.Range().Ptr(),
	}
}

// at formats where a range starts, as file:line:col.
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// numberText formats a number for a message, without writing out one of
// huge magnitude.
func numberText(bf *big.Float) string {
	if exp := bf.MantExp(nil); !bf.IsInf() && (exp > 64 || exp < -64) {
		return "a number of huge magnitude"
	}
	return bf.Text('g', -1)
}
