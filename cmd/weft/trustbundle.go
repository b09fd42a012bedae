package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/adapters/kubernetes/trustbundle"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/version"
)

// trustBundleFlags make the controller keep the mesh's trust bundle in a
// ConfigMap of every meshed Kubernetes namespace
// (adapters/kubernetes/trustbundle), with the credentials of its
// kubernetes adapter.
type trustBundleFlags struct {
	name, selector string
}

func (t *trustBundleFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&t.name, "kubernetes-trust-bundle", "", "keep the mesh's trust bundle (key ca.crt) in a ConfigMap of this name in every meshed namespace, current across CA rotations, with the kubernetes adapter's credentials (e.g. weft-trust-bundle; empty: off)")
	fl.StringVar(&t.selector, "kubernetes-mesh-namespaces", trustbundle.DefaultSelector, "the label selector of the meshed namespaces, for --kubernetes-trust-bundle")
}

// check refuses the flag without a kubernetes adapter and returns that
// adapter's source.
func (t trustBundleFlags) check(specs []adapterSpec) (string, error) {
	if t.name == "" {
		return "", nil
	}
	for _, a := range specs {
		if a.name == "kubernetes" {
			return a.source, nil
		}
	}
	return "", errors.New("--kubernetes-trust-bundle writes ConfigMaps with the kubernetes adapter's credentials: add --adapter kubernetes=in-cluster (or =KUBECONFIG)")
}

// run keeps the ConfigMaps current until ctx ends; with a raft replica,
// only while it is the leader.
func (t trustBundleFlags) run(ctx context.Context, source string, authority *ca.CA, rep *replica, log *slog.Logger) error {
	client, err := trustbundle.NewClient(source, version.Version)
	if err != nil {
		return err
	}
	var writer func() bool
	if node := rep.replica(); node != nil {
		writer = func() bool { return node.Status().State == "Leader" }
	}
	return trustbundle.Run(ctx, trustbundle.Options{Client: client, Name: t.name, Selector: t.selector,
		Bundle: authority.RootsPEM, Writer: writer, Logger: log.With("logger", "trust_bundle")})
}
