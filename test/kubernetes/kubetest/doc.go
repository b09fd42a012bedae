// Package kubetest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver as processes on 127.0.0.1, with token authentication,
// RBAC and a service-account issuer whose signing key the test holds.
// There is no kubelet, scheduler or controller-manager; package kubelet
// beside it plays the kubelet's part.
//
// Entry point: Start, which returns a running *Cluster (stopped at test
// cleanup) with an admin client and kubeconfig files for an admin, a user
// without permissions and an expired service-account token.
//
// etcd and kube-apiserver run as harness.Process (test/harness): each in a
// process group of its own, stopped at test cleanup, the last lines of
// its log shown when the test failed.
//
// The binaries come from Assets: $WEFT_K8S_ASSETS, else
// $HOME/.cache/weft/k8s-v1.37.2; when kube-apiserver or etcd is missing
// there, Assets runs test/tools/k8s/build.sh, which builds kube-apiserver
// from the Go module proxy (10 to 25 minutes cold) and installs Debian's
// etcd-server. A failed build fails the test loudly; it never skips.
package kubetest
