// Package inject is Weft's sidecar injector for Kubernetes: a mutating
// admission webhook that adds the weft-proxy container, its projected
// service-account token (audience "weft") and the mesh's trust bundle to
// every pod annotated weft.io/inject: "true", and sets weft.io/mesh-port,
// so that the kubernetes adapter finds the pod and the sidecar can join.
//
// Entry point: Handler, an http.Handler for AdmissionReview v1 requests;
// Mutate is the pure function it applies to a pod. The runnable server is
// examples/kubernetes/injector.
//
// Place in the data flow: kubectl apply -> kube-apiserver -> (this
// webhook) -> the pod as stored -> kubelet; the adapter then sees the pod
// like any hand-written meshed pod.
//
// The webhook fails open: a pod it cannot read is admitted unchanged, with
// a warning, since refusing pods would stop a cluster's workloads when the
// mesh is misconfigured.
package inject
