// Package trustbundle keeps the mesh's trust bundle (the CA roots a
// sidecar trusts the controller with) in a ConfigMap in every namespace
// that opts in to the mesh, and keeps it current: a namespace labelled
// weft.io/mesh=enabled gets the ConfigMap weft-trust-bundle (key ca.crt)
// at once, a CA rotation reaches every one of them within a tick (2s by
// default), a ConfigMap edited or deleted by hand is written again, and
// the ConfigMap of a namespace that opts out is deleted.
//
// Entry point: Run, which the controller runs with `weft controller
// --kubernetes-trust-bundle weft-trust-bundle` on the credentials of its
// kubernetes adapter (cmd/weft/trustbundle.go). The injector
// (adapters/kubernetes/inject) mounts that ConfigMap into every pod it
// injects.
//
// Place in the data flow: the controller's CA (core/ca, replicated by
// core/state) --Bundle--> Run --server-side apply--> ConfigMap in each
// meshed namespace --volume--> weft-proxy --trust-bundle.
//
// Replicas: every controller replica runs it, and only the one for which
// Options.Writer answers true (the raft leader) writes, so three replicas
// make one write per change, and a replica replaying old CA states after
// a restart never writes them.
//
// Writes are server-side applies with field manager weft-controller, so
// other managers' labels and annotations on the ConfigMap stay. What the
// controller's service account needs is in examples/kubernetes/rbac.yaml:
// list and watch namespaces; get, list, watch, create, patch and delete
// configmaps (get, list, watch, patch and delete limited to the name).
package trustbundle
