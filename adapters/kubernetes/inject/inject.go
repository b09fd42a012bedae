package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Annotations the injector reads and writes.
const (
	AnnotationInject   = "weft.io/inject"
	AnnotationMeshPort = "weft.io/mesh-port"
	AnnotationInjected = "weft.io/injected"
	// AnnotationProxyMode "node" puts a pod on its node's proxy (the
	// kubernetes adapter's DaemonSet, docs/deployment-models.md): such a
	// pod gets no sidecar. "sidecar" (or no annotation) is the default.
	AnnotationProxyMode = "weft.io/proxy-mode"
	ContainerName       = "weft-proxy"
	// MeshPortName names the sidecar's container port; Services target it
	// (targetPort: weft-mesh), never the app's port.
	MeshPortName = "weft-mesh"
)

// Options say what to inject.
type Options struct {
	ProxyImage        string // image holding weft-proxy
	Controller        string // host:port of the controllers' sidecar API: a comma-separated list, or a name resolving to every replica (a headless Service)
	TrustBundleConfig string // ConfigMap (in the pod's namespace) with key ca.crt
	Audience          string // token audience; default "weft"
	MeshPort          int    // default 15001
	AdminPort         int    // default 15000
	// Resources of the sidecar; default DefaultResources.
	Resources corev1.ResourceRequirements
}

// DefaultResources are the sidecar's requests and limits unless Options
// say otherwise: a proxy of a few connections needs a few MiB; the limit
// leaves room for bursts of TLS handshakes.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
}

// Restricted is the sidecar's security context, which the Pod Security
// "restricted" profile admits: a non-root user (the images' weft, 65532),
// no privilege escalation, no capability, the runtime's default seccomp
// profile, and a read-only root file system (weft-proxy writes nothing
// without --data-dir).
func Restricted() *corev1.SecurityContext {
	no, yes, uid := false, true, int64(65532)
	return &corev1.SecurityContext{
		RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid,
		AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func (o Options) withDefaults() Options {
	if o.Audience == "" {
		o.Audience = "weft"
	}
	if o.MeshPort == 0 {
		o.MeshPort = 15001
	}
	if o.AdminPort == 0 {
		o.AdminPort = 15000
	}
	if o.Resources.Requests == nil && o.Resources.Limits == nil {
		o.Resources = DefaultResources()
	}
	return o
}

// Validate says what is missing from the options.
func (o Options) Validate() error {
	switch {
	case o.ProxyImage == "":
		return errors.New("no proxy image: give the image that holds weft-proxy")
	case o.Controller == "":
		return errors.New("no controller address: give host:port of the controller's sidecar API")
	case o.TrustBundleConfig == "":
		return errors.New("no trust-bundle ConfigMap: give the name of the ConfigMap holding the controller's ca.crt")
	}
	return nil
}

// patchOp is one JSON Patch (RFC 6902) operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Mutate returns the JSON Patch that injects the sidecar into pod, or nil
// when the pod does not ask for it or already has it.
func Mutate(o Options, pod *corev1.Pod) ([]patchOp, error) {
	o = o.withDefaults()
	if v := pod.Annotations[AnnotationInject]; v != "true" {
		return nil, nil
	}
	switch mode := pod.Annotations[AnnotationProxyMode]; mode {
	case "", "sidecar":
	case "node":
		return nil, nil // served by its node's proxy: no sidecar of its own
	default:
		return nil, fmt.Errorf("annotation %s = %q: write \"node\" (served by the node proxy, no sidecar) or \"sidecar\" (the default)", AnnotationProxyMode, mode)
	}
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		if c.Name == ContainerName {
			return nil, nil // already there, written by hand or injected before
		}
	}
	meshPort := o.MeshPort
	if v, ok := pod.Annotations[AnnotationMeshPort]; ok {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("annotation %s = %q is not a port number from 1 to 65535", AnnotationMeshPort, v)
		}
		meshPort = p
	}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	exp := int64(3600)
	always := corev1.ContainerRestartPolicyAlways
	sidecar := corev1.Container{
		Name:    ContainerName,
		Image:   o.ProxyImage,
		Command: []string{"/usr/bin/weft-proxy"}, // the weft-proxy image's binary (make images)
		Args: []string{
			"--instance=$(POD_NAMESPACE)/$(POD_NAME)",
			"--controller=" + o.Controller,
			"--trust-bundle=/etc/weft/trust/ca.crt",
			// The admin API stays on the pod's loopback: the mesh port is
			// the only listener on the pod IP.
			fmt.Sprintf("--admin=127.0.0.1:%d", o.AdminPort),
			"--credential-adapter=kubernetes",
			"--credential-file=/var/run/secrets/weft/token",
		},
		Env:   []corev1.EnvVar{fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace")},
		Ports: []corev1.ContainerPort{{Name: MeshPortName, ContainerPort: int32(meshPort)}},
		// The kubelet probes from outside the pod, where the admin API is
		// not: the sidecar is ready when its inbound listens.
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{
			Port: intstr.FromString(MeshPortName)}}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "weft-token", MountPath: "/var/run/secrets/weft", ReadOnly: true},
			{Name: "weft-trust", MountPath: "/etc/weft/trust", ReadOnly: true},
		},
		// A native sidecar (Kubernetes 1.29+): an init container that
		// keeps running, started before the app's containers and stopped
		// after them, so the app's first call and last call have a proxy.
		RestartPolicy:   &always,
		SecurityContext: Restricted(),
		Resources:       o.Resources,
	}
	volumes := []corev1.Volume{
		{Name: "weft-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: o.Audience, ExpirationSeconds: &exp, Path: "token"}},
		}}}},
		{Name: "weft-trust", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: o.TrustBundleConfig}}}},
	}

	// First among the init containers: those after it (and the app)
	// start once it has started.
	ops := []patchOp{{Op: "add", Path: "/spec/initContainers", Value: []corev1.Container{sidecar}}}
	if len(pod.Spec.InitContainers) > 0 {
		ops = []patchOp{{Op: "add", Path: "/spec/initContainers/0", Value: sidecar}}
	}
	if len(pod.Spec.Volumes) == 0 {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/volumes", Value: volumes})
	} else {
		for _, v := range volumes {
			// A pod that declares the volume already (a template written
			// for the sidecar) keeps its own: a second one of the name
			// would make the API server refuse the pod.
			if slices.ContainsFunc(pod.Spec.Volumes, func(have corev1.Volume) bool { return have.Name == v.Name }) {
				continue
			}
			ops = append(ops, patchOp{Op: "add", Path: "/spec/volumes/-", Value: v})
		}
	}
	// pod.Annotations is not empty: it holds weft.io/inject.
	ops = append(ops,
		patchOp{Op: "add", Path: "/metadata/annotations/" + escape(AnnotationMeshPort), Value: strconv.Itoa(meshPort)},
		patchOp{Op: "add", Path: "/metadata/annotations/" + escape(AnnotationInjected), Value: "true"},
	)
	return ops, nil
}

// escape makes a JSON Pointer token of a key (RFC 6901).
func escape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '~':
			out = append(out, '~', '0')
		case '/':
			out = append(out, '~', '1')
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

// maxReview bounds an AdmissionReview body.
const maxReview = 4 << 20

// Handler answers AdmissionReview v1 requests for pods.
func Handler(o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxReview))
		if err != nil {
			http.Error(w, "reading the AdmissionReview: "+err.Error(), http.StatusBadRequest)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, "the body is not an AdmissionReview v1 with a request", http.StatusBadRequest)
			return
		}
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		var pod corev1.Pod
		if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
			resp.Warnings = []string{"weft injector: the object is not a pod; admitted unchanged"}
		} else if ops, err := Mutate(o, &pod); err != nil {
			resp.Warnings = []string{"weft injector: sidecar not injected: " + err.Error()}
		} else if len(ops) > 0 {
			patch, _ := json.Marshal(ops)
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
		}
		review.Response = resp
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&review)
	})
}
