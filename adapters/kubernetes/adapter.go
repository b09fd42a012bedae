package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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

	dirty := make(chan struct{}, 1)
	poke := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
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
	var last *sdk.WatchEvent
	poke()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dirty:
		}
		// Let a burst (a Deployment scaling, a slice rewrite) settle.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(debounce):
		}
		objs := objects{}
		if objs.Pods, err = pods.Lister().List(labels.Everything()); err != nil {
			return fmt.Errorf("reading the pod cache: %w", err)
		}
		if objs.Services, err = services.Lister().List(labels.Everything()); err != nil {
			return fmt.Errorf("reading the service cache: %w", err)
		}
		if objs.Slices, err = slices.Lister().List(labels.Everything()); err != nil {
			return fmt.Errorf("reading the EndpointSlice cache: %w", err)
		}
		instances, probs := translate(objs)
		ev := sdk.WatchEvent{Snapshot: model.Snapshot{Adapter: Name, Instances: instances}}
		for _, p := range probs {
			ev.Diagnostics = append(ev.Diagnostics, sdk.Diagnostic{
				Severity: sdk.SeverityWarning,
				Summary:  fmt.Sprintf("Pod %s/%s skipped", p.Namespace, p.Pod),
				Detail:   p.Message,
			})
		}
		rec.record(ctx, probs)
		if last != nil && reflect.DeepEqual(*last, ev) {
			continue
		}
		select {
		case events <- ev:
			last = &ev
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
