// Package kubernetes holds Weft's end-to-end tests on Kubernetes: a real
// etcd and kube-apiserver (package kubetest), the real weft controller with
// the kubernetes and local adapters, and pods whose app and weft-proxy the
// test runs as local processes, each pod on a loopback address of its own.
// The test plays the kubelet and the EndpointSlice controller: it creates
// the Pod objects, writes their IP and Ready condition, keeps their
// EndpointSlices, and hands each sidecar a pod-bound service-account token
// for audience "weft", as a projected token volume would.
//
// TestExampleIsolationAgainstAPIServer and TestInjectedIsolationAgainstAPIServer
// apply examples/kubernetes/app.yaml, and a pod through the injector, to
// the API server and check the isolation rule on what it stores (Service
// targets the mesh port; no other container port; app and admin on
// 127.0.0.1).
//
// Entry point: TestKubernetesMesh. harness_test.go is this package's
// harness (newMesh, runPod, waitEndpoints: the pods the test plays the
// kubelet for); processes, waits, JSON reads and sidecar endpoints come
// from test/harness.
package kubernetes
