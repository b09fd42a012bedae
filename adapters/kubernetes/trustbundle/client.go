package trustbundle

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// InCluster is the source meaning the service account of the pod the
// controller runs in, as for the kubernetes adapter.
const InCluster = "in-cluster"

// NewClient is a client for source, the kubernetes adapter's: "in-cluster"
// (or empty), or the path of a kubeconfig file.
func NewClient(source, version string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	switch source {
	case "", InCluster:
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("reading the in-cluster credentials for the trust bundle: %w; outside a pod, give the kubernetes adapter a kubeconfig: --adapter kubernetes=PATH", err)
		}
	default:
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: source}
		if cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig(); err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s for the trust bundle: %w", source, err)
		}
	}
	cfg.UserAgent = "weft-controller/" + version
	cfg.Timeout = writeTimeout
	return kubernetes.NewForConfig(cfg)
}
