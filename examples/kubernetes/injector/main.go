// Command weft-injector serves Weft's sidecar injector (package
// adapters/kubernetes/inject) as a mutating admission webhook over HTTPS:
// pods annotated weft.io/inject: "true" get the weft-proxy container, its
// projected token and the trust bundle.
//
//	weft-injector --tls-cert FILE --tls-key FILE --proxy-image IMAGE \
//	  --controller HOST:PORT [--trust-bundle-configmap NAME] [--listen ADDR]
//
// Register it with a MutatingWebhookConfiguration for pod CREATE (see
// ../README.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/adapters/kubernetes/inject"
)

func main() {
	var o inject.Options
	listen := flag.String("listen", ":8443", "address to serve HTTPS on")
	cert := flag.String("tls-cert", "", "PEM certificate the API server verifies (its caBundle)")
	key := flag.String("tls-key", "", "PEM private key of --tls-cert")
	flag.StringVar(&o.ProxyImage, "proxy-image", "", "image holding weft-proxy")
	flag.StringVar(&o.Controller, "controller", "", "host:port of the controllers' sidecar API: a comma-separated list for several replicas, or a DNS name that resolves to each (a headless Service)")
	flag.StringVar(&o.TrustBundleConfig, "trust-bundle-configmap", "weft-trust-bundle", "ConfigMap with the controller's ca.crt, in each pod's namespace")
	flag.Parse()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "weft-injector:", err)
		os.Exit(2)
	}
	if *cert == "" || *key == "" {
		fmt.Fprintln(os.Stderr, "weft-injector: --tls-cert and --tls-key are required: the API server calls webhooks over HTTPS only")
		os.Exit(2)
	}
	srv := &http.Server{Addr: *listen, Handler: inject.Handler(o), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServeTLS(*cert, *key); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "weft-injector: serving:", err)
		os.Exit(1)
	}
}
