// Package kubernetes is Weft's Kubernetes adapter. It watches Pods, Services
// and EndpointSlices with client-go informers (in one namespace or all,
// pods optionally narrowed by a label selector), turns them into instances
// with the pure function translate, and sends the controller a full
// snapshot on every change. It also proves sidecars' identities: a sidecar
// joins with a projected service-account token, which VerifyIdentity checks
// with the TokenReview API.
//
// Entry point: New, served by `weft adapter kubernetes`.
//
// Files: adapter.go (Info, Configure, Watch: the informers signal an
// sdk.Loop, which reads their caches, translates, drops unchanged
// snapshots and sends), client.go (the option schema, kubeconfig (kubeconfig, and Configure's checks of the
// API server, credentials and RBAC), translate.go (the pure translation
// and the weft.io/ annotations), identity.go (VerifyIdentity), nodeproxy.go
// (the node proxy's token: verifyNodeProxy), events.go
// (Events on skipped pods). The sidecar injector webhook is the
// subpackage inject; the real-API-server harness is test/kubernetes/kubetest.
//
// Place in the data flow:
//
//	kube-apiserver --watch--> informers --> translate --> snapshot --> controller
//	sidecar --Join(token)--> controller --VerifyIdentity--> TokenReview
//
// # Configuration
//
// The adapter's source (--adapter kubernetes=SOURCE) is the path of a
// kubeconfig file, or "in-cluster" (or empty) for the service account of
// the pod the controller runs in. Options (--adapter-option kubernetes.KEY=VALUE):
//
//	namespace       watch only this namespace (default: all)
//	label_selector  consider only pods matching this selector, e.g. app=shop
//	audience        the token audience sidecars present (default "weft")
//	context         the kubeconfig context to use (default: its current one)
//
// Configure checks that the API server answers, accepts the credentials,
// and grants every permission the adapter needs; each missing permission
// is reported with its verb and resource.
//
// # How a pod joins the mesh
//
// A pod is in the mesh when it declares the port of its sidecar's inbound
// (mTLS) listener, with the annotation weft.io/mesh-port or a container
// port named "weft-mesh". Its instances come from the EndpointSlices of
// the Services that select it:
//
//	weft.io/mesh-port   the sidecar's inbound port (number, or a container port name)
//	weft.io/app-port    the application's port (number, or a container port
//	                    name); default: the first port of the EndpointSlice
//	weft.io/upstreams   per-pod local ports for upstreams, "api=9001,db=9002";
//	                    they override the policy's local_port for this pod
//
// The mesh service of a pod is the Service that selects it whose name is
// the pod's service account: a pod runs as service account "api" to be an
// instance of service "api". This is also the identity rule: a sidecar
// presenting a token of service account S in namespace N can only obtain
// the certificate of service S in namespace N, and only for a pod that
// runs as S (and, for a pod-bound token, only for that very pod).
//
// An instance's ID is "<namespace>/<pod name>" (the sidecar's --instance,
// from the downward API). Its address is the pod's IP of the slice's
// address family (status.podIPs, which the EndpointSlice controller copies
// into the endpoint), else the endpoint's address; its health is below.
// Its ports are app, mesh, every named port of
// the EndpointSlice, and upstream:<service> for weft.io/upstreams. Pod
// labels become the instance's metadata (for subsets); namespace, pod,
// pod_uid, node and service_account are its scheduler labels.
//
// Every instance has Isolation netns: a pod is its own network namespace,
// and core/compile puts the sidecar's outbound listeners and the address
// it forwards to the app on 127.0.0.1, so only the mesh port is on the pod
// IP. That relies on the app binding 127.0.0.1 (not 0.0.0.0 or the pod
// IP), which the adapter cannot see and `weft check` verifies. The pod's
// Service should target the sidecar's mesh port (targetPort: weft-mesh),
// with weft.io/app-port naming the app's port, as examples/kubernetes does.
//
// # Health
//
// From the pod's endpoint in the EndpointSlice, which carries the pod's
// readiness (its readinessProbe and readiness gates, as the kubelet and
// the EndpointSlice controller judge them):
//
//   - critical while the endpoint is terminating (the pod is being
//     deleted), or says ready = false (a readiness probe fails, or has not
//     passed yet, or a container is not running), so that a pod turning
//     not-ready leaves every caller's endpoint set;
//   - passing otherwise: ready, or ready not said (an EndpointSlice
//     written without conditions means ready, as Kubernetes reads it).
//
// Never warning or unknown. A pod without an endpoint (not selected by a
// Service, or not yet listed) is no instance at all. The adapter runs no
// checks of its own: give the app a readinessProbe.
//
// # The node proxy
//
// A pod annotated weft.io/proxy-mode: node has no sidecar: the node proxy
// of its spec.nodeName serves it (its instance carries
// Meta weft_proxy_mode=node, Node = spec.nodeName, isolation none: such
// pods share the node's network). The node proxy is a pod of a DaemonSet
// annotated weft.io/node-proxy: "true"; it joins with its pod-bound token,
// and VerifyIdentity answers with its node when the token's pod exists,
// is Running on a node, runs as the DaemonSet's service account and is
// owned by that very DaemonSet (nodeproxy.go). It then vouches only for
// node-mode pods of that node; the controller checks the same against the
// snapshot. The adapter needs get on daemonsets.apps for it. See
// docs/deployment-models.md and examples/kubernetes/node-proxy.yaml.
//
// A meshed pod with a malformed annotation, or whose service account names
// none of the Services that select it, is skipped: it is reported as a
// warning diagnostic and as a Warning Event on the pod, and the rest of
// the snapshot is sent as usual.
package kubernetes
