package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// Name is the adapter's name: the controller's --adapter kubernetes=...,
// and the sidecar's --credential-adapter.
const Name = "kubernetes"

// DefaultAudience is the audience of the service-account tokens sidecars
// present.
const DefaultAudience = "weft"

// Bounds.
const (
	syncTimeout     = time.Minute           // informers' first list
	preflightBudget = 15 * time.Second      // Configure's checks
	requestTimeout  = 10 * time.Second      // one API request
	debounce        = 20 * time.Millisecond // coalesce bursts of events
	resyncEvery     = 0 * time.Second       // no periodic resync: watches carry every change
	eventTTL        = 10 * time.Minute      // how long an emitted pod Event is not repeated
	identityTimeout = 5 * time.Second       // TokenReview and pod lookup
)

// Adapter is the Kubernetes adapter. Create it with New.
type Adapter struct {
	// Version is what Info reports; cmd/weft sets the build's version.
	Version string

	log hclog.Logger

	mu  sync.Mutex
	cfg *config // nil until Configure succeeds
}

// config is what Configure resolved.
type config struct {
	source        string
	namespace     string // "" = all
	labelSelector labels.Selector
	selectorText  string
	audience      string
	rest          *rest.Config
	client        kubernetes.Interface
}

// New returns an unconfigured adapter that logs with the plugin SDK's
// logger (to the controller, when it runs as a plugin process).
func New() *Adapter { return &Adapter{Version: "dev", log: sdk.Logger()} }

// Info implements sdk.Adapter.
func (a *Adapter) Info(context.Context) (*sdk.InfoResponse, error) {
	return &sdk.InfoResponse{
		Name:            Name,
		Version:         a.Version,
		ProtocolVersion: sdk.ProtocolVersion,
		Capabilities:    []string{sdk.CapVerifiesIdentity},
		Options:         options,
	}, nil
}

// Configure implements sdk.Adapter: it loads the kubeconfig, checks
// that the API server answers and accepts the credentials, and that every
// permission the adapter needs is granted.
func (a *Adapter) Configure(ctx context.Context, req *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
	cfg, diags := loadConfig(req, a.Version)
	if cfg != nil {
		ctx, cancel := context.WithTimeout(ctx, preflightBudget)
		defer cancel()
		diags = append(diags, preflight(ctx, cfg)...)
	}
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			return &sdk.ConfigureResponse{Diagnostics: diags}, nil
		}
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	a.log.Info("configured", "source", cfg.source, "server", cfg.rest.Host, "namespace", nsText(cfg.namespace), "label_selector", cfg.selectorText)
	return &sdk.ConfigureResponse{Diagnostics: diags}, nil
}

func (a *Adapter) config() (*config, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg == nil {
		return nil, errors.New("the kubernetes adapter is not configured: the controller calls Configure before Watch")
	}
	return a.cfg, nil
}

// Watch implements sdk.Adapter: it runs informers on Pods, Services
// and EndpointSlices and sends a full snapshot after the first list and
// after every change, coalescing bursts.
func (a *Adapter) Watch(ctx context.Context, _ *sdk.WatchRequest, events chan<- sdk.WatchEvent) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var nsOpt []informers.SharedInformerOption
	if cfg.namespace != "" {
		nsOpt = append(nsOpt, informers.WithNamespace(cfg.namespace))
	}
	podFactory := informers.NewSharedInformerFactoryWithOptions(cfg.client, resyncEvery,
		append(nsOpt, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = cfg.selectorText }))...)
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.client, resyncEvery, nsOpt...)
	pods := podFactory.Core().V1().Pods()
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()

	changed := sdk.NewSignal()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed.Notify() },
		UpdateFunc: func(any, any) { changed.Notify() },
		DeleteFunc: func(any) { changed.Notify() },
	}
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), services.Informer(), slices.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("registering an informer handler: %w", err)
		}
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, r *cache.Reflector, err error) {
			a.log.Warn("watch interrupted; client-go retries with backoff", "error", err)
		})
	}
	podFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	defer podFactory.Shutdown()
	defer factory.Shutdown()

	syncCtx, syncCancel := context.WithTimeout(ctx, syncTimeout)
	ok := cache.WaitForCacheSync(syncCtx.Done(), pods.Informer().HasSynced, services.Informer().HasSynced, slices.Informer().HasSynced)
	syncCancel()
	if !ok {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("listing Pods, Services and EndpointSlices from %s: not done within %v; check that the API server answers and that the adapter may list and watch them", cfg.rest.Host, syncTimeout)
	}
	a.log.Info("informers synced", "server", cfg.rest.Host)

	rec := newEventRecorder(cfg.client, a.log)
	loop := sdk.Loop[objects]{
		// The caches: reading them fails only if they are broken, which
		// no retry mends.
		Fetch: func(context.Context) (objects, error) {
			var objs objects
			var err error
			if objs.Pods, err = pods.Lister().List(labels.Everything()); err != nil {
				return objs, sdk.Stop(fmt.Errorf("reading the pod cache: %w", err))
			}
			if objs.Services, err = services.Lister().List(labels.Everything()); err != nil {
				return objs, sdk.Stop(fmt.Errorf("reading the service cache: %w", err))
			}
			if objs.Slices, err = slices.Lister().List(labels.Everything()); err != nil {
				return objs, sdk.Stop(fmt.Errorf("reading the EndpointSlice cache: %w", err))
			}
			return objs, nil
		},
		// translate, with each skipped pod also reported as a pod Event.
		Translate: func(objs objects) (model.Snapshot, []sdk.Diagnostic) {
			ins, probs := resolve(objs)
			rec.record(ctx, probs)
			return snapshotOf(ins, probs)
		},
		Debounce: debounce, // let a burst (a Deployment scaling, a slice rewrite) settle
	}
	changed.Notify()
	if err := loop.Run(ctx, changed, events); err != nil {
		return err
	}
	return ctx.Err()
}

// Close implements io.Closer; the adapter holds nothing that outlives Watch.
func (a *Adapter) Close() error { return nil }

func nsText(ns string) string {
	if ns == "" {
		return "all namespaces"
	}
	return "namespace " + ns
}

var (
	_ sdk.Adapter          = (*Adapter)(nil)
	_ sdk.IdentityVerifier = (*Adapter)(nil)
)
