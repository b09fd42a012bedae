package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/plugins/sdk"
)

// Extra keys the API server sets on a pod-bound token's user.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
	saPrefix     = "system:serviceaccount:"
)

// VerifyIdentity implements sdk.IdentityVerifier: it reviews the
// sidecar's service-account token with the TokenReview API (audience
// "weft" unless configured otherwise), checks that the instance's pod runs
// as that service account (and is the token's pod, for a pod-bound token),
// and answers with the service the account maps to: its own name, in its
// namespace. A pod-bound token asking for another pod, or for no instance,
// is a node proxy's, checked by verifyNodeProxy (nodeproxy.go).
func (a *Adapter) VerifyIdentity(ctx context.Context, req *sdk.VerifyIdentityRequest) (*sdk.VerifyIdentityResponse, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	if strings.TrimSpace(req.Credential) == "" {
		return nil, errors.New("the credential is empty: mount a projected service-account token with audience " + cfg.audience + " and pass its path with --credential-file")
	}
	ns, podName, ok := cutInstance(req.InstanceID)
	if !ok && req.InstanceID != "" {
		return nil, fmt.Errorf("instance %q is not NAMESPACE/POD, the form of the kubernetes adapter's instance IDs", req.InstanceID)
	}
	review, err := cfg.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: req.Credential, Audiences: []string{cfg.audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("reviewing the token with the API server: %w", err)
	}
	st := review.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "not authenticated"
		}
		return nil, fmt.Errorf("the API server rejects the token for audience %q: %s", cfg.audience, why)
	}
	if len(st.Audiences) > 0 && !slices.Contains(st.Audiences, cfg.audience) {
		return nil, fmt.Errorf("the token is for audiences %v, not %q", st.Audiences, cfg.audience)
	}
	tokNS, tokSA, ok := serviceAccountOf(st.User.Username)
	if !ok {
		return nil, fmt.Errorf("the token belongs to %q, not to a service account", st.User.Username)
	}
	if req.InstanceID == "" {
		// A node proxy asks who it is (NodeInstances): nodeproxy.go.
		return verifyNodeProxy(ctx, cfg, st, tokNS, tokSA, "")
	}
	if names := st.User.Extra[extraPodName]; len(names) > 0 && (names[0] != podName || tokNS != ns) {
		// A pod-bound token for another pod: only a node proxy may ask.
		return verifyNodeProxy(ctx, cfg, st, tokNS, tokSA, req.InstanceID)
	}
	if tokNS != ns {
		return nil, fmt.Errorf("the token is of service account %s/%s, which cannot speak for a pod in namespace %s", tokNS, tokSA, ns)
	}

	pod, err := cfg.client.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("pod %s does not exist", req.InstanceID)
	}
	if err != nil {
		return nil, fmt.Errorf("getting pod %s: %w", req.InstanceID, err)
	}
	if uids := st.User.Extra[extraPodUID]; len(uids) > 0 && uids[0] != string(pod.UID) {
		return nil, fmt.Errorf("the token is bound to an earlier pod named %s (uid %s, now %s)", req.InstanceID, uids[0], pod.UID)
	}
	if sa := serviceAccount(pod); sa != tokSA {
		return nil, fmt.Errorf("pod %s runs as service account %s, but the token is of service account %s", req.InstanceID, sa, tokSA)
	}
	return &sdk.VerifyIdentityResponse{InstanceID: req.InstanceID, Service: tokSA, Namespace: tokNS}, nil
}

// cutInstance splits an instance ID, NAMESPACE/POD.
func cutInstance(id string) (ns, pod string, ok bool) {
	ns, pod, ok = strings.Cut(id, "/")
	return ns, pod, ok && ns != "" && pod != ""
}

// serviceAccountOf splits "system:serviceaccount:NS:NAME".
func serviceAccountOf(user string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, saPrefix)
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	return ns, name, ok && ns != "" && name != ""
}
