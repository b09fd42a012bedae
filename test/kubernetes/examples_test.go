package kubernetes

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	policyhcl "github.com/weftmesh/weft/hcl"
)

const examples = "../../examples/kubernetes"

func decodeAll(t *testing.T, path string) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, obj)
	}
}

// Every manifest in examples/kubernetes decodes, the policy compiles, the
// ClusterRole grants what the adapter checks for, and the example pods
// follow the identity rule (service account named after the Service).
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examples, "*.yaml"))
	if len(files) < 3 {
		t.Fatalf("found %v, want rbac.yaml, controller.yaml and app.yaml", files)
	}
	var role *rbacv1.ClusterRole
	var deployments []*appsv1.Deployment
	for _, f := range files {
		for _, obj := range decodeAll(t, f) {
			switch o := obj.(type) {
			case *rbacv1.ClusterRole:
				role = o
			case *appsv1.Deployment:
				deployments = append(deployments, o)
			}
		}
	}
	if _, diags, _ := policyhcl.Load(filepath.Join(examples, "policy")); diags.HasErrors() {
		t.Errorf("examples/kubernetes/policy: %v", diags)
	}
	if role == nil {
		t.Fatal("no ClusterRole in examples/kubernetes")
	}
	for _, need := range []struct{ group, resource, verb string }{
		{"", "pods", "list"}, {"", "pods", "watch"}, {"", "pods", "get"},
		{"", "services", "list"}, {"", "services", "watch"},
		{"discovery.k8s.io", "endpointslices", "list"}, {"discovery.k8s.io", "endpointslices", "watch"},
		{"authentication.k8s.io", "tokenreviews", "create"}, {"", "events", "create"},
	} {
		if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, need.group) && slices.Contains(r.Resources, need.resource) && slices.Contains(r.Verbs, need.verb)
		}) {
			t.Errorf("the ClusterRole does not grant %s %s (group %q), which the adapter needs", need.verb, need.resource, need.group)
		}
	}
	for _, d := range deployments {
		tpl := d.Spec.Template
		if _, meshed := tpl.Annotations["weft.io/mesh-port"]; !meshed {
			continue
		}
		if tpl.Spec.ServiceAccountName != d.Name {
			t.Errorf("deployment %s runs as service account %q: a meshed pod's service account must be its service's name", d.Name, tpl.Spec.ServiceAccountName)
		}
	}
}
