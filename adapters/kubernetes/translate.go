package kubernetes

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Annotations and names a pod uses to join the mesh (see doc.go).
const (
	AnnotationMeshPort  = "weft.io/mesh-port"
	AnnotationAppPort   = "weft.io/app-port"
	AnnotationUpstreams = "weft.io/upstreams"
	// AnnotationProxyMode "node" opts a meshed pod into its node's proxy
	// (nodeproxy.go): it has no sidecar, and the node proxy of its
	// spec.nodeName serves it. "sidecar", or no annotation, is the default.
	AnnotationProxyMode = "weft.io/proxy-mode"
	// MeshPortName is the container port name that declares the sidecar's
	// inbound port when the annotation is absent.
	MeshPortName = "weft-mesh"
	// upstreamPortPrefix is core/compile's name for per-instance upstream
	// ports; adapters do not import core/compile.
	upstreamPortPrefix = "upstream:"
)

// objects is what translate reads: the informers' caches.
type objects struct {
	Pods     []*corev1.Pod
	Services []*corev1.Service
	Slices   []*discoveryv1.EndpointSlice
}

// problem is one meshed pod that was skipped, and why.
type problem struct {
	Namespace, Pod string
	UID            string
	Reason         string // a CamelCase Event reason
	Message        string
}

// translate is the adapter's translate step: the snapshot of the meshed
// pods in objs, and a warning for each meshed pod it skipped. It is pure.
// Watch runs its two halves itself, to report the skipped pods as pod
// Events in between.
func translate(objs objects) (model.Snapshot, []sdk.Diagnostic) {
	return snapshotOf(resolve(objs))
}

// snapshotOf is the snapshot of ins, with a warning for each problem.
func snapshotOf(ins []model.Instance, probs []problem) (model.Snapshot, []sdk.Diagnostic) {
	var diags []sdk.Diagnostic
	for _, p := range probs {
		diags = append(diags, sdk.Warningf(fmt.Sprintf("Pod %s/%s skipped", p.Namespace, p.Pod), "%s", p.Message))
	}
	return model.Snapshot{Adapter: Name, Instances: ins}, diags
}

// resolve turns Pods, Services and EndpointSlices into the instances of
// meshed pods, sorted by ID, and the problems of meshed pods it skipped,
// sorted by pod. It is pure.
func resolve(objs objects) ([]model.Instance, []problem) {
	pods := map[string]*corev1.Pod{}
	for _, p := range objs.Pods {
		pods[p.Namespace+"/"+p.Name] = p
	}
	services := map[string]*corev1.Service{}
	for _, s := range objs.Services {
		services[s.Namespace+"/"+s.Name] = s
	}

	// Every (pod, Service) pairing an EndpointSlice makes.
	type candidate struct {
		service  string
		endpoint discoveryv1.Endpoint
		ports    []discoveryv1.EndpointPort
		ipv6     bool
	}
	byPod := map[string][]candidate{}
	slices := append([]*discoveryv1.EndpointSlice(nil), objs.Slices...)
	sort.Slice(slices, func(i, j int) bool {
		return slices[i].Namespace+"/"+slices[i].Name < slices[j].Namespace+"/"+slices[j].Name
	})
	for _, sl := range slices {
		svc := sl.Labels[discoveryv1.LabelServiceName]
		if _, ok := services[sl.Namespace+"/"+svc]; svc == "" || !ok {
			continue
		}
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || len(ep.Addresses) == 0 {
				continue
			}
			ns := ep.TargetRef.Namespace
			if ns == "" {
				ns = sl.Namespace
			}
			key := ns + "/" + ep.TargetRef.Name
			if _, ok := pods[key]; !ok {
				continue // out of scope (label selector) or not yet seen
			}
			byPod[key] = append(byPod[key], candidate{service: svc, endpoint: ep, ports: sl.Ports, ipv6: sl.AddressType == discoveryv1.AddressTypeIPv6})
		}
	}

	var out []model.Instance
	var probs []problem
	for key, cands := range byPod {
		pod := pods[key]
		if !meshed(pod) {
			continue
		}
		report := func(reason, format string, args ...any) {
			probs = append(probs, problem{Namespace: pod.Namespace, Pod: pod.Name, UID: string(pod.UID), Reason: reason, Message: fmt.Sprintf(format, args...)})
		}
		sa := serviceAccount(pod)
		// The Service named after the pod's service account; IPv4 first.
		sort.SliceStable(cands, func(i, j int) bool { return !cands[i].ipv6 && cands[j].ipv6 })
		var c *candidate
		var names []string
		for i := range cands {
			names = append(names, cands[i].service)
			if cands[i].service == sa && c == nil {
				c = &cands[i]
			}
		}
		if c == nil {
			sort.Strings(names)
			report("WeftNoMeshService", "pod runs as service account %q, but the Services selecting it are %s: Weft identifies a pod by its service account, so run it as the service account named after its Service",
				sa, strings.Join(uniq(names), ", "))
			continue
		}
		ports, err := podPorts(pod, c.ports)
		if err != nil {
			report("WeftInvalidAnnotation", "%v", err)
			continue
		}
		nodeMode, err := proxyMode(pod)
		if err != nil {
			report("WeftInvalidAnnotation", "%v", err)
			continue
		}
		in := model.Instance{
			ID:        pod.Namespace + "/" + pod.Name,
			Service:   c.service,
			Namespace: pod.Namespace,
			Address:   address(pod, c.endpoint, c.ipv6),
			Ports:     ports,
			Meta:      maps.Clone(pod.Labels),
			Health:    health(c.endpoint.Conditions),
			// A pod is its own network namespace: the app and the
			// outbound listeners on its 127.0.0.1 (see doc.go).
			Isolation: model.IsolationNetNS,
			Labels: map[string]string{
				"namespace":       pod.Namespace,
				"pod":             pod.Name,
				"pod_uid":         string(pod.UID),
				"service_account": sa,
			},
			Workload: map[string]string{model.WorkloadScheduler: "kubernetes", "namespace": pod.Namespace, "service_account": sa},
		}
		if node := nodeName(pod, c.endpoint); node != "" {
			in.Labels["node"] = node
			in.Node = node // spec.nodeName: a node proxy serves only its own node's pods
		}
		// The mode is the annotation's alone: a pod label of the same
		// name does not opt in.
		delete(in.Meta, model.MetaProxyMode)
		if nodeMode {
			if in.Meta == nil {
				in.Meta = map[string]string{}
			}
			in.Meta[model.MetaProxyMode] = model.ProxyModeNode
			// The node proxy binds the pod's IP from the node (host
			// networking, as the example's node-mode pods use): nothing
			// keeps the app's port to the proxy alone.
			in.Isolation = model.IsolationNone
		}
		if err := in.Validate(); err != nil {
			report("WeftInvalidPod", "%v", err)
			continue
		}
		out = append(out, in)
	}
	model.SortInstances(out)
	sort.Slice(probs, func(i, j int) bool {
		return probs[i].Namespace+"/"+probs[i].Pod < probs[j].Namespace+"/"+probs[j].Pod
	})
	return out, probs
}

// address is the pod's IP of the slice's family (status.podIPs), which is
// what the EndpointSlice controller copies into the endpoint, or else the
// endpoint's first address.
func address(pod *corev1.Pod, ep discoveryv1.Endpoint, ipv6 bool) string {
	for _, ip := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is6() == ipv6 {
			return ip.IP
		}
	}
	if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil && a.Is6() == ipv6 {
		return pod.Status.PodIP
	}
	return ep.Addresses[0]
}

// proxyMode reads weft.io/proxy-mode: true for "node".
func proxyMode(pod *corev1.Pod) (node bool, err error) {
	switch v, ok := pod.Annotations[AnnotationProxyMode]; {
	case !ok, v == "sidecar":
		return false, nil
	case v == model.ProxyModeNode:
		return true, nil
	default:
		return false, fmt.Errorf("annotation %s = %q: write \"node\" (its node's proxy serves the pod) or \"sidecar\" (the default)", AnnotationProxyMode, v)
	}
}

// meshed reports whether a pod declares a sidecar.
func meshed(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[AnnotationMeshPort]; ok {
		return true
	}
	_, ok := containerPort(pod, MeshPortName)
	return ok
}

func serviceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName == "" {
		return "default"
	}
	return pod.Spec.ServiceAccountName
}

func nodeName(pod *corev1.Pod, ep discoveryv1.Endpoint) string {
	if ep.NodeName != nil && *ep.NodeName != "" {
		return *ep.NodeName
	}
	return pod.Spec.NodeName
}

// health: ready and not terminating is passing. A nil condition means
// unknown, which Kubernetes clients read as ready.
func health(c discoveryv1.EndpointConditions) model.Health {
	if c.Terminating != nil && *c.Terminating {
		return model.HealthCritical
	}
	if c.Ready != nil && !*c.Ready {
		return model.HealthCritical
	}
	return model.HealthPassing
}

// podPorts resolves a meshed pod's ports from its annotations, its
// container ports and its EndpointSlice's ports.
func podPorts(pod *corev1.Pod, slicePorts []discoveryv1.EndpointPort) (map[string]int, error) {
	ports := map[string]int{}
	for _, p := range slicePorts {
		if p.Name != nil && *p.Name != "" && p.Port != nil {
			ports[*p.Name] = int(*p.Port)
		}
	}

	if v, ok := pod.Annotations[AnnotationMeshPort]; ok {
		p, err := portValue(pod, AnnotationMeshPort, v)
		if err != nil {
			return nil, err
		}
		ports[model.PortMesh] = p
	} else {
		p, _ := containerPort(pod, MeshPortName)
		ports[model.PortMesh] = p
	}

	if v, ok := pod.Annotations[AnnotationAppPort]; ok {
		p, err := portValue(pod, AnnotationAppPort, v)
		if err != nil {
			return nil, err
		}
		ports[model.PortApp] = p
	} else if len(slicePorts) > 0 && slicePorts[0].Port != nil {
		ports[model.PortApp] = int(*slicePorts[0].Port)
	} else {
		return nil, fmt.Errorf("no application port: the EndpointSlice lists no port; add the annotation %s", AnnotationAppPort)
	}
	if ports[model.PortApp] == ports[model.PortMesh] {
		return nil, fmt.Errorf("the application port and the sidecar's mesh port are both %d: give the sidecar a port of its own with %s", ports[model.PortMesh], AnnotationMeshPort)
	}

	if v, ok := pod.Annotations[AnnotationUpstreams]; ok {
		ups, err := parseUpstreams(v)
		if err != nil {
			return nil, err
		}
		for svc, p := range ups {
			ports[upstreamPortPrefix+svc] = p
		}
	}
	return ports, nil
}

// portValue reads a port annotation: a number, or a container port name.
func portValue(pod *corev1.Pod, annotation, v string) (int, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 65535 {
			return 0, fmt.Errorf("annotation %s = %q: a port is 1 to 65535", annotation, v)
		}
		return n, nil
	}
	if p, ok := containerPort(pod, v); ok {
		return p, nil
	}
	return 0, fmt.Errorf("annotation %s = %q is neither a port number nor the name of one of the pod's container ports", annotation, v)
}

// parseUpstreams reads "api=9001,db=9002".
func parseUpstreams(v string) (map[string]int, error) {
	out := map[string]int{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		svc, port, ok := strings.Cut(item, "=")
		svc, port = strings.TrimSpace(svc), strings.TrimSpace(port)
		n, err := strconv.Atoi(port)
		switch {
		case !ok:
			return nil, fmt.Errorf("annotation %s: %q is not SERVICE=PORT; write for example \"api=9001,db=9002\"", AnnotationUpstreams, item)
		case !model.ValidName(svc):
			return nil, fmt.Errorf("annotation %s: %q is not a service name (lower-case letters, digits, dashes)", AnnotationUpstreams, svc)
		case err != nil || n < 1 || n > 65535:
			return nil, fmt.Errorf("annotation %s: port %q of %s is not a number from 1 to 65535", AnnotationUpstreams, port, svc)
		}
		if _, dup := out[svc]; dup {
			return nil, fmt.Errorf("annotation %s: service %s is given twice", AnnotationUpstreams, svc)
		}
		out[svc] = n
	}
	return out, nil
}

func containerPort(pod *corev1.Pod, name string) (int, bool) {
	// A native sidecar (an init container that keeps running) declares
	// its port among the init containers.
	for _, c := range append(slices.Clone(pod.Spec.Containers), pod.Spec.InitContainers...) {
		for _, p := range c.Ports {
			if p.Name == name {
				return int(p.ContainerPort), true
			}
		}
	}
	return 0, false
}

func uniq(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
