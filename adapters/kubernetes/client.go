package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/plugins/sdk"
)

// InCluster is the source that means "the service account of the pod the
// controller runs in".
const InCluster = "in-cluster"

// options is the schema of the adapter's options (Info), which the host
// checks the operator's --adapter-option kubernetes.NAME=VALUE against.
var options = []sdk.OptionSpec{
	{Name: "namespace", Type: sdk.OptionString, Description: "the one namespace to watch; empty watches all"},
	{Name: "label_selector", Type: sdk.OptionString, Description: "only pods matching it join the mesh, written as kubectl does (app=shop,tier!=db)"},
	{Name: "audience", Type: sdk.OptionString, Default: DefaultAudience, Description: "the audience of the service-account tokens sidecars present"},
	{Name: "context", Type: sdk.OptionString, Description: "the kubeconfig context to use; empty uses its current one"},
}

// loadConfig reads the options and the kubeconfig. It makes no request.
func loadConfig(req *sdk.ConfigureRequest, version string) (*config, []sdk.Diagnostic) {
	var diags []sdk.Diagnostic
	opts, optDiags := sdk.ParseOptions(options, req.Options)
	diags = append(diags, optDiags...)
	for _, k := range opts.Unknown() {
		diags = append(diags, sdk.Errorf("Unknown option", "the kubernetes adapter has no option %q; it knows namespace, label_selector, audience and context", k))
	}
	cfg := &config{source: req.Source, namespace: opts.String("namespace"), audience: opts.String("audience"), selectorText: opts.String("label_selector")}
	if cfg.audience == "" {
		cfg.audience = DefaultAudience
	}
	sel, err := labels.Parse(cfg.selectorText)
	if err != nil {
		diags = append(diags, sdk.Errorf("Invalid label selector", "option label_selector = %q: %v; write it as kubectl does, for example app=shop,tier!=db", cfg.selectorText, err))
	}
	cfg.labelSelector = sel

	switch req.Source {
	case "", InCluster:
		cfg.source = InCluster
		cfg.rest, err = rest.InClusterConfig()
		if err != nil {
			diags = append(diags, sdk.Errorf("No in-cluster credentials", "the source is %q but %v; outside a pod, pass a kubeconfig path: --adapter kubernetes=PATH", InCluster, err))
			return nil, diags
		}
	default:
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: req.Source}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: opts.String("context")}
		cfg.rest, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		if err != nil {
			diags = append(diags, sdk.Errorf("Unusable kubeconfig", "loading kubeconfig %s: %v; pass the path of a kubeconfig file that kubectl accepts", req.Source, err))
			return nil, diags
		}
	}
	cfg.rest.UserAgent = "weft-kubernetes-adapter/" + version
	cfg.rest.Timeout = requestTimeout
	// Watches cost nothing against the limit; each joining sidecar costs a
	// TokenReview and a pod read, so client-go's default of 5 requests a
	// second would queue a rollout's joins.
	cfg.rest.QPS, cfg.rest.Burst = 50, 100
	cfg.client, err = kubernetes.NewForConfig(cfg.rest)
	if err != nil {
		diags = append(diags, sdk.Errorf("Unusable kubeconfig", "building a client from %s: %v", cfg.source, err))
		return nil, diags
	}
	for _, d := range diags {
		if d.Severity == sdk.SeverityError {
			return nil, diags
		}
	}
	return cfg, diags
}

// permission is one thing the adapter needs to be allowed to do.
type permission struct {
	verb, group, resource string
	namespaced            bool // checked in the watched namespace
	optional              bool // missing: a warning, not an error
	why                   string
}

var permissions = []permission{
	{"list", "", "pods", true, false, "to discover pods"},
	{"watch", "", "pods", true, false, "to discover pods"},
	{"get", "", "pods", true, false, "to check a joining sidecar's pod"},
	{"list", "", "services", true, false, "to discover services"},
	{"watch", "", "services", true, false, "to discover services"},
	{"list", "discovery.k8s.io", "endpointslices", true, false, "to discover endpoints"},
	{"watch", "discovery.k8s.io", "endpointslices", true, false, "to discover endpoints"},
	{"create", "authentication.k8s.io", "tokenreviews", false, false, "to verify sidecars' service-account tokens"},
	{"create", "", "events", true, true, "to report pods with malformed Weft annotations"},
	{"get", "apps", "daemonsets", false, true, "to check that a node proxy's pod belongs to a DaemonSet annotated weft.io/node-proxy (docs/deployment-models.md)"},
}

// preflight checks that the API server answers, that it accepts the
// credentials, and that every permission is granted.
func preflight(ctx context.Context, cfg *config) []sdk.Diagnostic {
	if _, err := cfg.client.Discovery().ServerVersion(); err != nil {
		return []sdk.Diagnostic{describeAPIError(cfg, err)}
	}
	user := "the adapter's user"
	if r, err := cfg.client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		user = fmt.Sprintf("user %q", r.Status.UserInfo.Username)
	} else if apierrors.IsUnauthorized(err) {
		return []sdk.Diagnostic{describeAPIError(cfg, err)}
	}
	var diags []sdk.Diagnostic
	for _, p := range permissions {
		ns := ""
		if p.namespaced {
			ns = cfg.namespace
		}
		r, err := cfg.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: ns, Verb: p.verb, Group: p.group, Resource: p.resource,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return append(diags, describeAPIError(cfg, fmt.Errorf("checking permission to %s %s: %w", p.verb, p.resource, err)))
		}
		if r.Status.Allowed {
			continue
		}
		where := "cluster-wide"
		if ns != "" {
			where = "in namespace " + ns
		} else if p.namespaced {
			where = "in all namespaces"
		}
		res := p.resource
		if p.group != "" {
			res = p.resource + "." + p.group
		}
		mk := sdk.Errorf
		if p.optional {
			mk = sdk.Warningf
		}
		diags = append(diags, mk("Missing Kubernetes permission",
			"%s may not %s %s %s (verb %q, resource %q, API group %q), which the adapter needs %s; grant it in the adapter's Role or ClusterRole (examples/kubernetes/rbac.yaml lists every rule)",
			user, p.verb, res, where, p.verb, p.resource, p.group, p.why))
	}
	return diags
}

// describeAPIError turns a failed request into a diagnostic that says what
// is missing.
func describeAPIError(cfg *config, err error) sdk.Diagnostic {
	var netErr net.Error
	switch {
	case apierrors.IsUnauthorized(err):
		return sdk.Errorf("Kubernetes API server refused the credentials",
			"%s answered 401 Unauthorized to the credentials from %s: the token or client certificate is expired, revoked or not for this cluster; get fresh credentials (for a service account: a new token) and restart the controller",
			cfg.rest.Host, cfg.source)
	case apierrors.IsForbidden(err):
		return sdk.Errorf("Missing Kubernetes permission", "%s: %v; grant it in the adapter's Role or ClusterRole (examples/kubernetes/rbac.yaml)", cfg.rest.Host, err)
	case errors.As(err, &netErr), strings.Contains(err.Error(), "connection refused"), strings.Contains(err.Error(), "no such host"):
		return sdk.Errorf("Kubernetes API server unreachable",
			"the kubeconfig %s points at %s, which does not answer: %v; check the server address in the kubeconfig and that the API server runs",
			cfg.source, cfg.rest.Host, err)
	default:
		return sdk.Errorf("Kubernetes API server request failed", "%s (kubeconfig %s): %v", cfg.rest.Host, cfg.source, err)
	}
}
