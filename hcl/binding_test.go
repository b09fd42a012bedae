package policyhcl

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// TestBindingDecode: each scheduler's binding becomes the policy's
// Binding, and matches exactly the workloads it names.
func TestBindingDecode(t *testing.T) {
	p, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(`
service "catalog" {
  namespace = "shop"
  binding "nomad" {
    namespace = "shop"
    job       = "catalog"
    task      = "*"
  }
  binding "kubernetes" {
    namespace       = "shop"
    service_account = "catalog"
  }
  binding "mesos" {
    role      = "shop"
    principal = "catalog"
  }
  binding "local" { name = "catalog" }
}
`)})
	if diags.HasErrors() || len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	b := p.Services["catalog"].Bindings
	if len(b) != 4 || b[0].Scheduler != "nomad" || b[0].Match["task"] != policy.Wildcard || b[3].Match["name"] != "catalog" {
		t.Fatalf("bindings %+v", b)
	}
	w := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	s := model.WorkloadScheduler
	for _, tc := range []struct {
		name  string
		w     map[string]string
		bound bool
	}{
		{"nomad task of the job", w(s, "nomad", "namespace", "shop", "job", "catalog", "group", "g", "task", "app"), true},
		{"nomad group service: no task", w(s, "nomad", "namespace", "shop", "job", "catalog", "group", "g"), false},
		{"nomad job in the default namespace", w(s, "nomad", "namespace", "default", "job", "catalog", "task", "app"), false},
		{"service account", w(s, "kubernetes", "namespace", "shop", "service_account", "catalog"), true},
		{"default service account", w(s, "kubernetes", "namespace", "shop", "service_account", "default"), false},
		{"mesos role and principal", w(s, "mesos", "framework", "f1", "role", "shop", "principal", "catalog"), true},
		{"mesos principal alone", w(s, "mesos", "framework", "f1", "principal", "catalog"), false},
		{"local block", w(s, "local", "name", "catalog"), true},
		{"local impostor", w(s, "local", "name", "impostor"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Bound("catalog", tc.w); (err == nil) != tc.bound {
				t.Errorf("Bound = %v, want bound %v", err, tc.bound)
			}
		})
	}
}

// TestUnboundServiceDiagnostics: validate names every service without a
// binding, at its service block, with the blocks to add: an error in
// strict mode (the default), a warning in permissive mode; it waits for
// the rest of the policy to be valid.
func TestUnboundServiceDiagnostics(t *testing.T) {
	const services = `
service "api" {
  namespace = "shop"
}
service "web" {
  binding "local" { name = "web" }
}
`
	for _, tc := range []struct {
		name     string
		mesh     string
		severity hcl.DiagnosticSeverity
		policy   bool
	}{
		{"default is strict", "", hcl.DiagError, false},
		{"strict", `mesh { identity_binding = "strict" }`, hcl.DiagError, false},
		{"permissive", `mesh { identity_binding = "permissive" }`, hcl.DiagWarning, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, diags, _ := LoadSources(map[string][]byte{"mesh.hcl": []byte(tc.mesh), "services.hcl": []byte(services)})
			if (p != nil) != tc.policy {
				t.Errorf("policy %v, want one: %v", p != nil, tc.policy)
			}
			if len(diags) != 1 {
				t.Fatalf("diagnostics %v, want one for api", diags)
			}
			d := diags[0]
			if d.Summary != "Service without binding" || d.Severity != tc.severity {
				t.Errorf("diagnostic %q severity %v, want %q %v", d.Summary, d.Severity, "Service without binding", tc.severity)
			}
			if d.Subject == nil || d.Subject.Filename != "services.hcl" || d.Subject.Start.Line != 2 {
				t.Errorf("subject %v, want services.hcl line 2 (the service block)", d.Subject)
			}
			for _, want := range []string{`Service "api"`, `binding "nomad" {`, `namespace = "shop"`, `job       = "api"`, `service_account = "api"`, `binding "local" { name = "api" }`} {
				if !strings.Contains(d.Detail, want) {
					t.Errorf("detail lacks %q:\n%s", want, d.Detail)
				}
			}
			if tc.policy && !p.Mesh.Permissive() {
				t.Error("the policy is not permissive")
			}
		})
	}
	// Another error first: the binding check waits, so it never buries it.
	_, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(`service "api" { protocol = "htp" }`)})
	if len(diags) != 1 || diags[0].Summary != "Invalid protocol" {
		t.Errorf("diagnostics %v, want only the invalid protocol", diags)
	}
}

// TestIntentionNamespaces: how each source spelling compiles.
func TestIntentionNamespaces(t *testing.T) {
	p, diags, _ := LoadSources(map[string][]byte{"p.hcl": []byte(`
service "api" {
  namespace = "shop"
  binding "local" { name = "api" }
}
service "web" {
  binding "local" { name = "web" }
}
intention "default/web" "api" { action = "allow" }
intention "ops/*" "api" { action = "allow" }
intention "*" "api" { action = "deny" }
intention "api" "api" { action = "allow" }
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []string
	for _, in := range p.Intentions {
		got = append(got, in.SourceNamespace+"|"+in.Source+">"+in.Destination)
	}
	want := []string{"|api>api", "default|web>api", "ops|*>api", "*|*>api"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("intentions %v, want %v", got, want)
	}
	for _, tc := range []struct {
		caller policy.Caller
		want   policy.Action
	}{
		{policy.Caller{Namespace: "default", Service: "web"}, policy.Allow},
		{policy.Caller{Namespace: "evil", Service: "web"}, policy.Deny},
		{policy.Caller{Namespace: "ops", Service: "anything"}, policy.Allow},
		{policy.Caller{Namespace: "shop", Service: "api"}, policy.Allow},
		{policy.Caller{Namespace: "default", Service: "api"}, policy.Deny},
	} {
		if got, _ := p.DecideCaller(tc.caller, "api"); got != tc.want {
			t.Errorf("%v -> api: %s, want %s", tc.caller, got, tc.want)
		}
	}
}

// TestUnboundDiagnosticRendering: the blocks to add keep their layout
// when rendered, so they can be copied into a policy file.
func TestUnboundDiagnosticRendering(t *testing.T) {
	_, diags, files := LoadSources(map[string][]byte{"p.hcl": []byte("service \"catalog\" {\n  namespace = \"shop\"\n}\n")})
	var b strings.Builder
	if err := WriteDiagnostics(&b, diags, files, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n  binding \"nomad\" {", "\n    namespace = \"shop\"\n    job       = \"catalog\"\n  }\n", "\n  binding \"local\" { name = \"catalog\" }"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("rendered diagnostic lacks %q:\n%s", want, b.String())
		}
	}
}
