package policyhcl

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// binding is a decoded binding block: the scheduler workloads allowed to
// serve the service it is in. The label names the scheduler; attributes
// are matched exactly against what the scheduler reports for an instance
// (model.Instance.Workload), never against what the instance claims:
//
//	binding "nomad" {
//	  namespace = "shop"    # required
//	  job       = "catalog" # required
//	  group     = "web"     # optional; "*" or left out: any group of the job
//	  task      = "app"     # optional; "*" or left out: any task
//	}
//	binding "kubernetes" {
//	  namespace       = "shop"    # required
//	  service_account = "catalog" # required
//	}
//	binding "mesos" { principal = "catalog" } # one or more of principal, role, framework_name
//	binding "local" { name = "catalog" }      # the workloads file's service block label
type binding struct {
	Scheduler string
	Match     map[string]string

	DeclRange hcl.Range
}

// bindingAttrs is each scheduler's attributes: required ones, optional
// ones, and those that may be "*". Namespaces, jobs, service accounts,
// principals, roles and names are where a scheduler draws its ACL lines,
// so they are always exact; "*" is allowed only inside one Nomad job,
// whose group and task the job's own author controls.
var bindingAttrs = map[string]struct {
	required, optional, wildcard []string
	anyOf                        bool // at least one of optional is required
}{
	"nomad":      {required: []string{"namespace", "job"}, optional: []string{"group", "task"}, wildcard: []string{"group", "task"}},
	"kubernetes": {required: []string{"namespace", "service_account"}},
	"mesos":      {optional: []string{"principal", "role", "framework_name"}, anyOf: true},
	"local":      {required: []string{"name"}},
}

func bindingSchedulers() []string {
	return slices.Sorted(maps.Keys(bindingAttrs))
}

func decodeBindingBlock(block *hcl.Block, svc string) (*binding, hcl.Diagnostics) {
	b := &binding{Scheduler: block.Labels[0], Match: map[string]string{}, DeclRange: block.DefRange}
	spec, ok := bindingAttrs[b.Scheduler]
	if !ok {
		names := bindingSchedulers()
		hint := ""
		if sg := suggest(b.Scheduler, names); sg != "" {
			hint = fmt.Sprintf("Did you mean %q?", sg)
		}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown binding scheduler",
			Detail: fmt.Sprintf("Service %q has a binding for %q, which is not a scheduler Weft knows. Use one of %s. %s",
				svc, b.Scheduler, quoteList(names, "or"), hint),
			Subject: block.LabelRanges[0].Ptr(),
			Context: block.DefRange.Ptr(),
		}}
	}
	schema := &hcl.BodySchema{}
	for _, n := range spec.required {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: n, Required: true})
	}
	for _, n := range spec.optional {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: n})
	}
	content, diags := block.Body.Content(schema)
	for _, d := range diags {
		if d.Summary == "Missing required argument" || d.Summary == "Unsupported argument" {
			d.Detail += fmt.Sprintf(" A %q binding takes %s.", b.Scheduler, bindingUsage(b.Scheduler))
		}
	}
	for name, attr := range content.Attributes {
		v, set, valDiags := decodeString(attr)
		diags = append(diags, valDiags...)
		if !set {
			if !valDiags.HasErrors() {
				diags = append(diags, missingArgument(attr))
			}
			continue
		}
		switch {
		case strings.TrimSpace(v) == "":
			diags = append(diags, errorAt(attr.Expr.Range(), "Empty binding attribute",
				fmt.Sprintf("%s of the %q binding of service %q is empty. Give the exact value the scheduler reports.", name, b.Scheduler, svc)))
			continue
		case v == policy.Wildcard && slices.Contains(spec.wildcard, name):
			b.Match[name] = policy.Wildcard
			continue
		case strings.Contains(v, "*"):
			where := "no attribute of a " + fmt.Sprintf("%q", b.Scheduler) + " binding"
			if len(spec.wildcard) > 0 {
				where = fmt.Sprintf("only %s of a %q binding, and only as \"*\" alone", quoteList(spec.wildcard, "and"), b.Scheduler)
			}
			diags = append(diags, errorAt(attr.Expr.Range(), "Wildcard in a binding",
				fmt.Sprintf("%s = %q: a binding names the workloads that may take service %q's identity, so its values are matched exactly; "+
					"\"*\" may be %s. Name the workload exactly, or write one binding per workload.", name, v, svc, where)))
			continue
		}
		b.Match[name] = v
	}
	if spec.anyOf && len(content.Attributes) == 0 {
		diags = append(diags, errorAt(block.DefRange, "Empty binding",
			fmt.Sprintf("The %q binding of service %q names no workload. It takes %s.", b.Scheduler, svc, bindingUsage(b.Scheduler))))
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return b, diags
}

// bindingUsage says which attributes a scheduler's binding takes.
func bindingUsage(sched string) string {
	spec := bindingAttrs[sched]
	var parts []string
	if len(spec.required) > 0 {
		parts = append(parts, quoteList(spec.required, "and")+" (required)")
	}
	if len(spec.optional) > 0 {
		if spec.anyOf {
			parts = append(parts, "one or more of "+quoteList(spec.optional, "and"))
		} else {
			parts = append(parts, quoteList(spec.optional, "and")+" (optional)")
		}
	}
	return strings.Join(parts, ", ")
}

// key identifies a binding, to find duplicates.
func (b *binding) key() string {
	keys := slices.Sorted(maps.Keys(b.Match))
	var s strings.Builder
	s.WriteString(b.Scheduler)
	for _, k := range keys {
		fmt.Fprintf(&s, "\x00%s=%s", k, b.Match[k])
	}
	return s.String()
}

func (b *binding) toPolicy() policy.Binding {
	return policy.Binding{Scheduler: b.Scheduler, Match: maps.Clone(b.Match)}
}

// checkBindings names every service that has no binding, with blocks it
// could add. In strict mode (the default) that is an error: no instance of
// such a service would ever get a certificate. In permissive mode it is a
// warning. It runs only on an otherwise valid policy, so that it never
// buries a real error.
func checkBindings(services []*service, permissive bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, s := range services {
		if len(s.Bindings) > 0 {
			continue
		}
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Service without binding",
			Detail: fmt.Sprintf("Service %q names no workload allowed to serve it, so no instance of it gets a certificate or traffic "+
				"(identity_binding is strict). Add a binding block to it for the scheduler that runs it, for example:\n\n%s",
				s.Name, bindingExamples(s)),
			Subject: s.DeclRange.Ptr(),
		}
		if permissive {
			d.Severity = hcl.DiagWarning
			d.Detail = fmt.Sprintf("Service %q names no workload allowed to serve it. identity_binding is permissive, so any workload that "+
				"registers the name %q gets its identity and traffic. Add a binding block before switching to strict, for example:\n\n%s",
				s.Name, s.Name, bindingExamples(s))
		}
		diags = append(diags, d)
	}
	return diags
}

// bindingExamples are binding blocks for service s, one per scheduler,
// with the service's namespace and name filled in.
func bindingExamples(s *service) string {
	ns := s.Namespace
	if ns == "" {
		ns = model.DefaultNamespace
	}
	return fmt.Sprintf(`  binding "nomad" {        # the Nomad job that registers it
    namespace = %[1]q
    job       = %[2]q
  }
  binding "kubernetes" {   # the pods' service account
    namespace       = %[1]q
    service_account = %[2]q
  }
  binding "mesos" { principal = %[2]q }
  binding "local" { name = %[2]q }   # the workloads file's block label`, ns, s.Name)
}
