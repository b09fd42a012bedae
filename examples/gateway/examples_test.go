package gateway_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/registry"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// load is the example's policy, and the ports of its gateway's listeners.
func load(t *testing.T) (*policy.Policy, []int) {
	t.Helper()
	p, diags, _ := policyhcl.Load("policy")
	if diags.HasErrors() || p == nil {
		t.Fatalf("examples/gateway/policy: %v", diags)
	}
	g, ok := p.Gateways["public"]
	if !ok || g.Service != "public-gateway" {
		t.Fatalf("the policy has no gateway public run by public-gateway: %+v", p.Gateways)
	}
	var ports []int
	for _, l := range g.Listeners {
		ports = append(ports, l.Port)
	}
	return p, ports
}

// The policy compiles; the gateway may call the frontend; an instance of
// public-gateway gets a gateway configuration (no inbound) with both
// listeners and the frontend's endpoints.
func TestPolicy(t *testing.T) {
	p, ports := load(t)
	if got, _ := p.Decide("public-gateway", "frontend"); got != policy.Allow {
		t.Errorf("public-gateway -> frontend: %s, want allow", got)
	}
	wl := func(name string) map[string]string {
		return map[string]string{model.WorkloadScheduler: "local", "name": name}
	}
	cfgs := compile.Compile(p, []registry.Entry{
		{Adapter: "local", Instance: model.Instance{ID: "public-gateway-0", Service: "public-gateway", Address: "127.0.0.3",
			Ports: map[string]int{model.PortApp: 18080, model.PortMesh: 15001}, Health: model.HealthPassing, Workload: wl("public-gateway")}},
		{Adapter: "local", Instance: model.Instance{ID: "frontend-0", Service: "frontend", Address: "127.0.0.2",
			Ports: map[string]int{model.PortApp: 8080, model.PortMesh: 15001}, Health: model.HealthPassing, Workload: wl("frontend")}},
	})
	gw := cfgs["public-gateway-0"]
	if gw.GetInbound() != nil || len(gw.GetGateway().GetListeners()) != len(ports) {
		t.Fatalf("the gateway's configuration: %v", gw)
	}
	for _, l := range gw.GetGateway().GetListeners() {
		r := l.GetRoutes()[0]
		if l.GetBindAddress() != "127.0.0.3" || r.GetUpstream().GetService() != "frontend" || len(r.GetUpstream().GetEndpoints()) != 1 {
			t.Errorf("listener %s: bound to %s, first route %v", l.GetName(), l.GetBindAddress(), r)
		}
	}
	if gw.GetGateway().GetListeners()[0].GetProtocol() != meshapi.GatewayProtocol_GATEWAY_PROTOCOL_HTTPS {
		t.Errorf("the first listener is not https")
	}
}

// The local adapter's workloads run frontend and the gateway.
func TestWorkloads(t *testing.T) {
	src, err := os.ReadFile("workloads.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, "workloads.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var names []string
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		names = append(names, b.Labels[0])
	}
	if strings.Join(names, ",") != "frontend,public-gateway" {
		t.Errorf("workloads: %v, want frontend and public-gateway (the names the policy's local bindings give)", names)
	}
}

// The Nomad job is the job the policy binds, runs weft-proxy --gateway
// public, and reserves the listeners' ports and a mesh port.
func TestNomadJob(t *testing.T) {
	_, ports := load(t)
	src, err := os.ReadFile("gateway.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if _, diags := hclsyntax.ParseConfig(src, "gateway.nomad.hcl", hcl.InitialPos); diags.HasErrors() {
		t.Fatal(diags)
	}
	text := string(src)
	for _, want := range []string{`job "public-gateway"`, `port "mesh" {}`, `"--gateway", "public"`, `"--instance", "${NOMAD_ALLOC_ID}/public-gateway"`, `name     = "public-gateway"`} {
		if !strings.Contains(text, want) {
			t.Errorf("gateway.nomad.hcl lacks %s", want)
		}
	}
	for _, p := range ports {
		if !strings.Contains(text, "static = "+itoa(p)) {
			t.Errorf("gateway.nomad.hcl reserves no static port %d for the listener", p)
		}
	}
}

// The Kubernetes manifests: the service account the policy binds, a
// Deployment of weft-proxy --gateway=public exposing the listeners'
// ports, a Service of that name selecting its pods.
func TestKubernetes(t *testing.T) {
	_, ports := load(t)
	src, err := os.ReadFile("gateway.k8s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var dep *appsv1.Deployment
	var svc *corev1.Service
	var sa *corev1.ServiceAccount
	for _, doc := range strings.Split(string(src), "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		var into any
		switch meta.Kind {
		case "Deployment":
			dep = &appsv1.Deployment{}
			into = dep
		case "Service":
			svc = &corev1.Service{}
			into = svc
		case "ServiceAccount":
			sa = &corev1.ServiceAccount{}
			into = sa
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
	}
	if dep == nil || svc == nil || sa == nil {
		t.Fatal("want a ServiceAccount, a Service and a Deployment")
	}
	spec := dep.Spec.Template.Spec
	if sa.Name != "public-gateway" || svc.Name != "public-gateway" || spec.ServiceAccountName != "public-gateway" {
		t.Errorf("names: service account %q, service %q, pods run as %q; want public-gateway (the binding's service_account)", sa.Name, svc.Name, spec.ServiceAccountName)
	}
	if dep.Spec.Template.Annotations["weft.io/mesh-port"] == "" {
		t.Error("the pods have no weft.io/mesh-port annotation, so the adapter does not list them")
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the pods do not carry", k, v)
		}
	}
	c := spec.Containers[0]
	if len(spec.Containers) != 1 || !slices.Contains(c.Args, "--gateway=public") {
		t.Errorf("want one container, weft-proxy --gateway=public: %+v", spec.Containers)
	}
	var cports []int
	for _, p := range c.Ports {
		cports = append(cports, int(p.ContainerPort))
	}
	for _, p := range ports {
		if !slices.Contains(cports, p) {
			t.Errorf("the container does not expose the listener port %d", p)
		}
	}
}

// The Marathon pod: one weft-proxy --gateway public, labelled with the
// gateway's service, with a mesh endpoint and the listeners' host ports.
func TestMesosPod(t *testing.T) {
	_, ports := load(t)
	b, err := os.ReadFile("gateway.mesos.json")
	if err != nil {
		t.Fatal(err)
	}
	var pod struct {
		Containers []struct {
			Labels    map[string]string `json:"labels"`
			Endpoints []struct {
				Name     string `json:"name"`
				HostPort int    `json:"hostPort"`
			} `json:"endpoints"`
			Exec struct {
				Command struct {
					Shell string `json:"shell"`
				} `json:"command"`
			} `json:"exec"`
		} `json:"containers"`
	}
	if err := json.Unmarshal(b, &pod); err != nil {
		t.Fatal(err)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want weft-proxy alone", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Labels["weft.service"] != "public-gateway" || !strings.Contains(c.Exec.Command.Shell, "weft-proxy --gateway public") ||
		!strings.Contains(c.Exec.Command.Shell, "/v1/join-tokens") {
		t.Errorf("the container needs weft.service=public-gateway, a join token and weft-proxy --gateway public: %+v", c)
	}
	host := map[string]int{}
	for _, e := range c.Endpoints {
		host[e.Name] = e.HostPort
	}
	if _, ok := host["mesh"]; !ok {
		t.Error("no mesh endpoint: the mesos adapter skips a task without one")
	}
	for _, p := range ports {
		found := false
		for _, hp := range host {
			found = found || hp == p
		}
		if !found {
			t.Errorf("no endpoint reserves host port %d for the listener", p)
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
