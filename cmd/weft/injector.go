package main

import (
	"context"
	"fmt"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/adapters/kubernetes/inject"
)

// newInjectorCmd is `weft injector`: the Kubernetes sidecar injector
// (adapters/kubernetes/inject) as a mutating admission webhook, so that
// the weft image runs it (examples/kubernetes/injector.yaml).
func newInjectorCmd() *cobra.Command {
	var o inject.ServeOptions
	var listen string
	cmd := &cobra.Command{
		Use:   "injector --tls-cert FILE --tls-key FILE --proxy-image IMAGE --controller HOST:PORT",
		Short: "Serve the Kubernetes sidecar injector (a mutating admission webhook)",
		Long: `The injector adds the weft-proxy sidecar, as a native sidecar container (an
init container with restartPolicy Always), to every pod annotated
weft.io/inject: "true" in the namespaces its MutatingWebhookConfiguration
selects (examples/kubernetes/injector.yaml: those labelled
weft.io/mesh=enabled). It serves HTTPS with --tls-cert and --tls-key and reads
them again when either file changes (a renewed Secret), without a restart.
GET /healthz answers 200 for probes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logFlags.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o.Logger = log
			if err := o.Validate(); err != nil {
				return err
			}
			lis, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listening for the API server on %s: %w (pick another address with --listen)", listen, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return inject.Serve(ctx, lis, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", ":8443", "address to serve HTTPS on")
	fl.StringVar(&o.CertFile, "tls-cert", "", "PEM certificate the API server verifies (with the caBundle of the webhook configuration); read again when it changes")
	fl.StringVar(&o.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&o.ProxyImage, "proxy-image", "", "image holding /usr/bin/weft-proxy (make images: IMAGE_PREFIX/weft-proxy:VERSION)")
	fl.StringVar(&o.Controller, "controller", "", "host:port of the controllers' sidecar API: a comma-separated list for several replicas, or a DNS name that resolves to each (a headless Service)")
	fl.StringVar(&o.TrustBundleConfig, "trust-bundle-configmap", "weft-trust-bundle", "ConfigMap with the mesh's ca.crt, in each pod's namespace (the controller writes it: --kubernetes-trust-bundle)")
	return cmd
}
