// Package inject is Weft's sidecar injector for Kubernetes: a mutating
// admission webhook that adds the weft-proxy container, its projected
// service-account token (audience "weft") and the mesh's trust bundle to
// every pod annotated weft.io/inject: "true", and sets weft.io/mesh-port,
// so that the kubernetes adapter finds the pod and the sidecar can join.
//
// Entry point: Handler, an http.Handler for AdmissionReview v1 requests;
// Mutate is the pure function it applies to a pod. The runnable server is
// `weft injector` (cmd/weft/injector.go), which runs Serve: HTTPS with a
// certificate read again when its files change (CertFiles), and GET /healthz.
// The sidecar is a native sidecar container (an init container with
// restartPolicy Always) with a restricted security context (Restricted)
// and requests and limits (DefaultResources).
//
// A pod annotated weft.io/proxy-mode: "node" is served by its node's
// proxy (a DaemonSet, docs/deployment-models.md) and gets no sidecar,
// even when it asks for injection; an unknown mode is an error (the pod is
// admitted unchanged, with a warning).
//
// Place in the data flow: kubectl apply -> kube-apiserver -> (this
// webhook) -> the pod as stored -> kubelet; the adapter then sees the pod
// like any hand-written meshed pod.
//
// The sidecar it adds keeps the pod's isolation: its mesh port (container
// port weft-mesh) is its only listener on the pod IP; its admin API is on
// 127.0.0.1 (so the readiness probe is a TCP check of the mesh port, which
// listens once the sidecar has its configuration). It sets nothing on the
// app's containers: the app must listen on 127.0.0.1 (the sidecar forwards
// there) and reach its upstreams at 127.0.0.1:<local_port>, the pod's
// weft.io/app-port names the app's port, and the pod's Service targets
// weft-mesh, not the app.
//
// The webhook fails open: a pod it cannot read is admitted unchanged, with
// a warning, since refusing pods would stop a cluster's workloads when the
// mesh is misconfigured.
package inject
