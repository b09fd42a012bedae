package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from translate's output")

// loadObjects decodes a multi-document YAML file of Kubernetes objects.
func loadObjects(t *testing.T, path string) objects {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs objects
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: decoding %q: %v", path, firstLine(doc), err)
		}
		switch o := obj.(type) {
		case *corev1.Pod:
			objs.Pods = append(objs.Pods, o)
		case *corev1.Service:
			objs.Services = append(objs.Services, o)
		case *discoveryv1.EndpointSlice:
			objs.Slices = append(objs.Slices, o)
		default:
			t.Fatalf("%s: unexpected %T", path, obj)
		}
	}
	return objs
}

func firstLine(b []byte) string { s, _, _ := strings.Cut(string(b), "\n"); return s }

// TestTranslateGolden runs translate on each testdata/*.yaml and compares
// instances and problems with testdata/*.golden.json.
func TestTranslateGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ins, probs := resolve(loadObjects(t, f))
			got, _ := json.MarshalIndent(struct {
				Instances []model.Instance
				Problems  []problem
			}{ins, probs}, "", "  ")
			golden := strings.TrimSuffix(f, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestTranslateGolden -update to write it)", err)
			}
			if string(bytes.TrimSpace(want)) != string(got) {
				t.Errorf("translate(%s) differs from %s:\n%s", f, golden, got)
			}
		})
	}
}

// The promises the golden files hold, spelled out.
func TestTranslateShop(t *testing.T) {
	ins, probs := resolve(loadObjects(t, "testdata/shop.yaml"))
	byID := map[string]model.Instance{}
	for _, in := range ins {
		byID[in.ID] = in
	}
	if len(ins) != 3 || len(probs) != 0 {
		t.Fatalf("got %d instances and problems %v, want 3 and none: %+v", len(ins), probs, ins)
	}
	ready, notReady, web := byID["shop/api-7d4b9-abcde"], byID["shop/api-7d4b9-fghij"], byID["shop/web-5c8f7-klmno"]
	checks := []struct {
		what      string
		got, want any
	}{
		{"ready pod's health", ready.Health, model.HealthPassing},
		{"not-ready pod's health", notReady.Health, model.HealthCritical},
		{"service", ready.Service, "api"},
		{"address", ready.Address, "198.51.100.11"},
		{"mesh port from annotation", ready.Ports[model.PortMesh], 15001},
		{"app port from the slice", ready.Ports[model.PortApp], 8080},
		{"named slice port", ready.Ports["http"], 8080},
		{"app port from a container port name", notReady.Ports[model.PortApp], 8080},
		{"mesh port from container port weft-mesh", web.Ports[model.PortMesh], 15001},
		{"upstream port", web.Ports["upstream:store"], 9002},
		{"pod label as metadata", notReady.Meta["version"], "v2"},
		{"node label", notReady.Labels["node"], "node-b"},
		{"service account label", web.Labels["service_account"], "web"},
		{"pod label", web.Labels["pod"], "web-5c8f7-klmno"},
		{"namespace", web.Namespace, "shop"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestTranslateSkipsOnlyMalformedPods(t *testing.T) {
	ins, probs := resolve(loadObjects(t, "testdata/malformed.yaml"))
	if len(ins) != 1 || ins[0].ID != "shop/api-good" {
		t.Errorf("instances %+v, want only shop/api-good", ins)
	}
	want := map[string]string{
		"api-bad-port":      "neither a port number nor the name",
		"api-bad-range":     "a port is 1 to 65535",
		"api-bad-upstreams": "is not SERVICE=PORT",
		"api-same-ports":    "both 8080",
		"api-wrong-sa":      `runs as service account "default"`,
	}
	if len(probs) != len(want) {
		t.Errorf("problems %+v, want one for each of %v", probs, want)
	}
	for _, p := range probs {
		if w, ok := want[p.Pod]; !ok || !strings.Contains(p.Message, w) {
			t.Errorf("problem for %s: %q, want it to say %q", p.Pod, p.Message, w)
		}
		if p.UID == "" || p.Reason == "" {
			t.Errorf("problem %+v lacks the pod's UID or an event reason", p)
		}
	}
}

// translate, the adapter's translate step, is resolve as a snapshot: the
// instances, and one warning per skipped pod naming it.
func TestTranslateSnapshot(t *testing.T) {
	objs := loadObjects(t, "testdata/malformed.yaml")
	ins, probs := resolve(objs)
	snap, diags := translate(objs)
	if snap.Adapter != Name || !reflect.DeepEqual(snap.Instances, ins) {
		t.Errorf("snapshot %+v, want adapter %s and the instances %+v", snap, Name, ins)
	}
	if len(diags) != len(probs) {
		t.Fatalf("%d diagnostics for %d skipped pods", len(diags), len(probs))
	}
	for i, d := range diags {
		p := probs[i]
		if d.Severity != sdk.SeverityWarning || d.Summary != "Pod "+p.Namespace+"/"+p.Pod+" skipped" || d.Detail != p.Message {
			t.Errorf("diagnostic %+v, want a warning naming pod %s/%s with %q", d, p.Namespace, p.Pod, p.Message)
		}
	}
}

func TestParseUpstreams(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]int
		wantErr string
	}{
		{"api=9001", map[string]int{"api": 9001}, ""},
		{" api = 9001 , db=9002,", map[string]int{"api": 9001, "db": 9002}, ""},
		{"", map[string]int{}, ""},
		{"api:9001", nil, "not SERVICE=PORT"},
		{"API=9001", nil, "not a service name"},
		{"api=0", nil, "1 to 65535"},
		{"api=x", nil, "1 to 65535"},
		{"api=1,api=2", nil, "given twice"},
	} {
		got, err := parseUpstreams(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseUpstreams(%q) error %v, want one saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("parseUpstreams(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("parseUpstreams(%q)[%s] = %d, want %d", tc.in, k, got[k], v)
			}
		}
	}
}

func TestHealth(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		c    discoveryv1.EndpointConditions
		want model.Health
	}{
		{discoveryv1.EndpointConditions{}, model.HealthPassing},
		{discoveryv1.EndpointConditions{Ready: &yes}, model.HealthPassing},
		{discoveryv1.EndpointConditions{Ready: &no}, model.HealthCritical},
		{discoveryv1.EndpointConditions{Ready: &yes, Terminating: &yes}, model.HealthCritical},
	} {
		if got := health(tc.c); got != tc.want {
			t.Errorf("health(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// Objects recorded from the real API server in test/kubernetes: the slice
// holds documentation addresses (the API server refuses loopback ones),
// the pods their loopback IPs, which are the addresses to use.
func TestTranslateRecorded(t *testing.T) {
	objs := loadObjects(t, "testdata/recorded.yaml")
	ins, probs := resolve(objs)
	if len(ins) != 3 || len(probs) != 0 {
		t.Fatalf("got %d instances, problems %v; want web-0, api-0, api-1 and none", len(ins), probs)
	}
	ips := map[string]string{}
	for _, p := range objs.Pods {
		ips[p.Namespace+"/"+p.Name] = p.Status.PodIP
	}
	for _, in := range ins {
		if in.Address != ips[in.ID] || in.Health != model.HealthPassing || in.Service != in.Labels["service_account"] {
			t.Errorf("%s: address %s health %s service %s, want the pod IP %s, passing, the service account's name",
				in.ID, in.Address, in.Health, in.Service, ips[in.ID])
		}
	}
}

// A native sidecar (an init container with restartPolicy Always, as the
// injector writes it) declares the mesh port among the init containers.
func TestContainerPortOfNativeSidecar(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "weft-proxy", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "weft-mesh", ContainerPort: 15001}}}},
		Containers:     []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
	}}
	for _, tc := range []struct {
		name string
		want int
		ok   bool
	}{{"weft-mesh", 15001, true}, {"http", 8080, true}, {"nope", 0, false}} {
		if got, ok := containerPort(pod, tc.name); got != tc.want || ok != tc.ok {
			t.Errorf("containerPort(%q) = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// Node mode is the annotation weft.io/proxy-mode: node, and nothing else.
func TestTranslateNodeMode(t *testing.T) {
	ins, probs := resolve(loadObjects(t, "testdata/nodemode.yaml"))
	byID := map[string]model.Instance{}
	for _, in := range ins {
		byID[in.ID] = in
	}
	for _, tc := range []struct {
		id, mode, node string
		isolation      model.Isolation
	}{
		{"shop/api-a", model.ProxyModeNode, "node-a", model.IsolationNone},
		{"shop/api-b", "", "node-b", model.IsolationNetNS}, // a label of the same name opts nothing in
		{"shop/api-c", "", "node-a", model.IsolationNetNS}, // "sidecar" said outright
	} {
		in, ok := byID[tc.id]
		if !ok {
			t.Errorf("%s missing from %+v", tc.id, ins)
			continue
		}
		if in.Meta[model.MetaProxyMode] != tc.mode || in.Node != tc.node || in.Isolation != tc.isolation {
			t.Errorf("%s: mode %q node %q isolation %q, want %q %q %q", tc.id, in.Meta[model.MetaProxyMode], in.Node, in.Isolation, tc.mode, tc.node, tc.isolation)
		}
	}
	if len(probs) != 1 || probs[0].Pod != "api-bad-mode" || !strings.Contains(probs[0].Message, `write "node"`) {
		t.Errorf("problems %+v, want api-bad-mode's misspelt mode only", probs)
	}
}
