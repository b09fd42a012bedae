package trustbundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Defaults of Options.
const (
	DefaultName      = "weft-trust-bundle"
	DefaultKey       = "ca.crt"
	DefaultSelector  = "weft.io/mesh=enabled"
	DefaultEvery     = 2 * time.Second
	FieldManager     = "weft-controller"
	ManagedByLabel   = "app.kubernetes.io/managed-by"
	ManagedByValue   = "weft-controller"
	maxBundleBytes   = 512 << 10 // a ConfigMap holds at most 1 MiB
	writeTimeout     = 10 * time.Second
	repeatErrorAfter = time.Minute
)

// Options say where the bundle goes and where it comes from.
type Options struct {
	Client kubernetes.Interface
	// Name and Key of the ConfigMap; defaults DefaultName and DefaultKey.
	Name, Key string
	// Selector picks the meshed namespaces, written as kubectl does;
	// default DefaultSelector.
	Selector string
	// Bundle returns the PEM bundle in force (core/ca's RootsPEM).
	Bundle func() []byte
	// Writer says whether this replica writes now; nil: always.
	Writer func() bool
	// Every is how often the bundle and Writer are read; default
	// DefaultEvery.
	Every  time.Duration
	Logger *slog.Logger
	// Synced, when set, is called after every pass that left every
	// meshed namespace's ConfigMap current, with their number.
	Synced func(namespaces int)
}

func (o *Options) defaults() error {
	if o.Client == nil || o.Bundle == nil {
		return errors.New("trust bundle: no Kubernetes client or no bundle")
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Key == "" {
		o.Key = DefaultKey
	}
	if o.Selector == "" {
		o.Selector = DefaultSelector
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Run writes the bundle into every meshed namespace and keeps it current
// until ctx ends. It returns an error only for options it cannot use.
func Run(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	sel, err := labels.Parse(o.Selector)
	if err != nil {
		return fmt.Errorf("parsing the namespace selector %q: %w; write it as kubectl does, e.g. weft.io/mesh=enabled", o.Selector, err)
	}
	nsFactory := informers.NewSharedInformerFactoryWithOptions(o.Client, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = sel.String() }))
	cmFactory := informers.NewSharedInformerFactoryWithOptions(o.Client, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.Name).String()
		}))
	nsInf, cmInf := nsFactory.Core().V1().Namespaces(), cmFactory.Core().V1().ConfigMaps()
	dirty := make(chan struct{}, 1)
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { mark() }, UpdateFunc: func(any, any) { mark() }, DeleteFunc: func(any) { mark() },
	}
	if _, err := nsInf.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watching namespaces: %w", err)
	}
	if _, err := cmInf.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watching configmaps: %w", err)
	}
	nsFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	defer nsFactory.Shutdown()
	defer cmFactory.Shutdown()
	o.Logger.Info("trust bundle: keeping it in every meshed namespace", "configmap", o.Name, "namespaces", sel.String())
	for !cache.WaitForCacheSync(ctx.Done(), nsInf.Informer().HasSynced, cmInf.Informer().HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
	}
	s := &syncer{o: o, namespaces: nsInf.Lister(), configMaps: cmInf.Lister(), errs: map[string]time.Time{}}
	tick := time.NewTicker(o.Every)
	defer tick.Stop()
	var last []byte
	for {
		bundle := o.Bundle()
		// A pass on every event, and on a tick when the bundle changed
		// or a write failed before.
		if (o.Writer == nil || o.Writer()) && (s.pending || !bytes.Equal(bundle, last)) {
			last = bytes.Clone(bundle)
			s.pass(ctx, bundle)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-dirty:
			s.pending = true
		case <-tick.C:
		}
	}
}

// syncer is one Run's state.
type syncer struct {
	o          Options
	namespaces interface {
		List(labels.Selector) ([]*corev1.Namespace, error)
	}
	configMaps interface {
		List(labels.Selector) ([]*corev1.ConfigMap, error)
	}
	pending bool
	errs    map[string]time.Time // last logged, by namespace
}

// pass makes every meshed namespace's ConfigMap hold bundle, and deletes
// the ones it wrote in namespaces that opted out.
func (s *syncer) pass(ctx context.Context, bundle []byte) {
	s.pending = false
	if len(bundle) == 0 || len(bundle) > maxBundleBytes {
		s.o.Logger.Error("trust bundle: not written: the CA's bundle is empty or larger than a ConfigMap should hold", "bytes", len(bundle))
		return
	}
	nss, _ := s.namespaces.List(labels.Everything())
	cms, _ := s.configMaps.List(labels.Everything())
	have := map[string]*corev1.ConfigMap{}
	for _, cm := range cms {
		have[cm.Namespace] = cm
	}
	meshed := map[string]bool{}
	sort.Slice(nss, func(i, j int) bool { return nss[i].Name < nss[j].Name })
	ok := 0
	for _, ns := range nss {
		meshed[ns.Name] = true
		if ns.Status.Phase == corev1.NamespaceTerminating {
			continue
		}
		if cm := have[ns.Name]; cm != nil && cm.Data[s.o.Key] == string(bundle) && cm.Labels[ManagedByLabel] == ManagedByValue {
			ok++
			continue
		}
		if err := s.write(ctx, ns.Name, bundle); err != nil {
			s.failed(ns.Name, "writing", err)
			continue
		}
		delete(s.errs, ns.Name)
		ok++
		s.o.Logger.Info("trust bundle: written", "namespace", ns.Name, "configmap", s.o.Name)
	}
	for ns, cm := range have {
		if meshed[ns] || cm.Labels[ManagedByLabel] != ManagedByValue {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := s.o.Client.CoreV1().ConfigMaps(ns).Delete(wctx, s.o.Name, metav1.DeleteOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			s.failed(ns, "deleting (the namespace left the mesh)", err)
			continue
		}
		s.o.Logger.Info("trust bundle: deleted: the namespace left the mesh", "namespace", ns, "configmap", s.o.Name)
	}
	if ok == len(nss) && s.o.Synced != nil {
		s.o.Synced(ok)
	}
}

func (s *syncer) write(ctx context.Context, ns string, bundle []byte) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	cm := corev1ac.ConfigMap(s.o.Name, ns).
		WithLabels(map[string]string{ManagedByLabel: ManagedByValue}).
		WithAnnotations(map[string]string{"weft.io/description": "the Weft mesh's trust bundle, written by the controller; edits are undone"}).
		WithData(map[string]string{s.o.Key: string(bundle)})
	_, err := s.o.Client.CoreV1().ConfigMaps(ns).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return err
}

// failed logs a failed write at most once a minute per namespace and
// leaves the next tick to try again.
func (s *syncer) failed(ns, doing string, err error) {
	s.pending = true
	if t, ok := s.errs[ns]; ok && time.Since(t) < repeatErrorAfter {
		return
	}
	s.errs[ns] = time.Now()
	hint := ""
	if apierrors.IsForbidden(err) {
		hint = "; grant the controller's service account the configmaps rules of examples/kubernetes/rbac.yaml"
	}
	s.o.Logger.Warn(fmt.Sprintf("trust bundle: %s configmap %s/%s: %v%s", doing, ns, s.o.Name, err, hint))
}
