package mesos

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// The node proxy on Mesos (docs/deployment-models.md, "Using it on
// Mesos"): a framework launches one weft-proxy task per agent, labelled
// weft.proxy=node, and the tasks that choose node mode (label
// weft.proxy_mode=node) run without a sidecar. Mesos gives a task no
// identity of its own, so the framework gives the node-proxy task one: a
// node-proxy token the controller mints for that task (see
// NodeProxyTokenNode), in the task's environment. The adapter checks it
// (VerifyIdentity) against the master: the token's task must be RUNNING, on
// the token's agent, labelled as a node proxy.
const (
	// LabelProxy, as weft.proxy=node, marks a node-proxy task. It is not
	// an instance itself.
	LabelProxy = "weft.proxy"
	// LabelProxyMode, as weft.proxy_mode=node, opts a task into its
	// agent's node proxy; "sidecar" (or "instance") is the default.
	LabelProxyMode = "weft.proxy_mode"
	// NodeProxyValue is LabelProxy's value and LabelProxyMode's node mode.
	NodeProxyValue = "node"

	// nodeClaimPrefix starts the node claim of a node-proxy token.
	nodeClaimPrefix = "mesos-node-proxy/"
	// maxCredential bounds what VerifyIdentity reads before parsing.
	maxCredential = 4096
)

// NodeProxyTokenNode is the node a framework names when it asks the
// controller's admin API for the token of a node-proxy task (POST
// /v1/join-tokens {"adapter": "mesos", "node": NodeProxyTokenNode(...)}):
// the framework, agent and task the token is for. It is no agent's ID, so
// the controller never admits the token itself as a node token (that
// would skip the master's word that the task runs); only this adapter
// reads it. Mesos IDs never contain '/' (the master refuses them), so the
// three parts are unambiguous.
func NodeProxyTokenNode(frameworkID, agentID, taskID string) string {
	return nodeClaimPrefix + frameworkID + "/" + agentID + "/" + taskID
}

// nodeProxyClaim is what a node-proxy token names.
type nodeProxyClaim struct{ framework, agent, task string }

func parseNodeProxyClaim(node string) (nodeProxyClaim, bool) {
	rest, ok := strings.CutPrefix(node, nodeClaimPrefix)
	if !ok {
		return nodeProxyClaim{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nodeProxyClaim{}, false
	}
	return nodeProxyClaim{framework: parts[0], agent: parts[1], task: parts[2]}, true
}

// tokenClaims are the claims of a Weft join or node token (the format
// plugins/sdk mints and core/ca verifies: "wj1." base64url(JSON) "."
// base64url(HMAC-SHA256)).
type tokenClaims struct {
	Adapter  string `json:"a"`
	Instance string `json:"i"`
	Service  string `json:"s"`
	Node     string `json:"nd"`
}

const tokenPrefix = "wj1."

// errNotToken is a credential that is not a Weft token at all.
var errNotToken = errors.New(`the credential is not a Weft node-proxy token (it should start with "wj1."); give the node proxy the token its framework asked the controller for`)

// verifyToken checks a token's signature with the adapter's join key and
// returns its claims. It does not check the expiry: see VerifyIdentity.
func verifyToken(key []byte, tok string) (tokenClaims, error) {
	if len(tok) > maxCredential {
		return tokenClaims{}, fmt.Errorf("the credential is %d bytes, more than the %d a node-proxy token takes", len(tok), maxCredential)
	}
	body, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return tokenClaims{}, errNotToken
	}
	payload, sig, ok := strings.Cut(body, ".")
	if !ok {
		return tokenClaims{}, errNotToken
	}
	if len(key) < 16 {
		return tokenClaims{}, errors.New("the controller gave this adapter no join key, so it cannot check node-proxy tokens; upgrade the controller")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(tokenPrefix + payload))
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		return tokenClaims{}, errors.New("the node-proxy token's signature does not verify: it was altered, or minted by another controller or for another adapter")
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return tokenClaims{}, fmt.Errorf("decoding the node-proxy token: %w", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return tokenClaims{}, fmt.Errorf("decoding the node-proxy token's claims: %w", err)
	}
	return c, nil
}

// VerifyIdentity checks a node proxy's credential (the adapter announces
// CapVerifiesIdentity for this; Mesos sidecars keep joining with their
// single-use join tokens). The credential is a node-proxy token: it must
// verify with this adapter's join key, name a task (NodeProxyTokenNode),
// and the master must report that task RUNNING, on that agent, labelled
// weft.proxy=node. The answer names the agent (as model.Instance.Node
// does). With an instance ID, that instance must be a running task on
// the same agent that chose node mode (weft.proxy_mode=node); the
// controller checks both again against the adapter's snapshot.
//
// The token's expiry is not checked: it bounds nothing here, as the
// master's word that the task runs is checked at every call, and a node
// proxy keeps its token as long as it runs. A killed task's token is
// refused from the moment the master reports the task ended.
func (a *Adapter) VerifyIdentity(ctx context.Context, req *sdk.VerifyIdentityRequest) (*sdk.VerifyIdentityResponse, error) {
	a.mu.Lock()
	cfg, w := a.cfg, a.live
	a.mu.Unlock()
	if cfg == nil {
		return nil, errors.New("the Mesos adapter is not configured yet")
	}
	c, err := verifyToken(cfg.joinKey, req.Credential)
	if err != nil {
		return nil, err
	}
	claim, ok := parseNodeProxyClaim(c.Node)
	switch {
	case c.Instance != "":
		return nil, fmt.Errorf("the credential is the join token of instance %q: a sidecar joins with its join token ($WEFT_JOIN_TOKEN), and only a node-proxy task presents a credential to the Mesos adapter", c.Instance)
	case !ok:
		return nil, fmt.Errorf("the token names node %q, not a node-proxy task (%sFRAMEWORK/AGENT/TASK): ask the controller for a token for the node-proxy task, not for the agent", c.Node, nodeClaimPrefix)
	}
	s, err := a.stateFor(ctx, cfg, w, func(s *State) bool {
		if runningProxy(s, claim) != nil {
			return false
		}
		_, err := nodeModeInstance(s, req.InstanceID)
		return req.InstanceID == "" || err == nil
	})
	if err != nil {
		return nil, err
	}
	if err := runningProxy(s, claim); err != nil {
		return nil, err
	}
	if req.InstanceID == "" {
		return &sdk.VerifyIdentityResponse{Node: claim.agent}, nil
	}
	in, err := nodeModeInstance(s, req.InstanceID)
	if err != nil {
		return nil, err
	}
	if in.Node != claim.agent {
		return nil, fmt.Errorf("the node proxy of agent %s may not serve task %s: Mesos placed it on agent %s", claim.agent, req.InstanceID, in.Node)
	}
	return &sdk.VerifyIdentityResponse{InstanceID: in.ID, Service: in.Service, Namespace: in.Namespace, Node: claim.agent}, nil
}

// runningProxy says why s does not show the claim's task as a running
// node proxy on its agent, or nil.
func runningProxy(s *State, claim nodeProxyClaim) error {
	t, ok := s.Tasks[taskKey(claim.framework, claim.task)]
	switch {
	case !ok:
		return fmt.Errorf("node-proxy task %s of framework %s is not running (the master reports no such active task): a token is good only while its task runs", claim.task, claim.framework)
	case t.GetState() != mesos.TASK_RUNNING:
		return fmt.Errorf("node-proxy task %s is %s, not TASK_RUNNING", claim.task, t.GetState())
	case t.AgentID.Value != claim.agent:
		return fmt.Errorf("the token is for node-proxy task %s on agent %s, but Mesos runs it on agent %s", claim.task, claim.agent, t.AgentID.Value)
	case labelOf(t, LabelProxy) != NodeProxyValue:
		return fmt.Errorf("task %s is not a node proxy: it lacks the label %s=%s", claim.task, LabelProxy, NodeProxyValue)
	}
	return nil
}

// nodeModeInstance is the meshed instance with task ID id, if it chose
// node mode.
func nodeModeInstance(s *State, id string) (model.Instance, error) {
	var found []mesos.Task
	for _, t := range s.Tasks {
		if t.TaskID.Value == id {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 0:
		return model.Instance{}, fmt.Errorf("task %s is not running (the master reports no such active task)", id)
	case len(found) > 1:
		return model.Instance{}, fmt.Errorf("%d frameworks run a task %s, so it is not meshed; give tasks unique IDs", len(found), id)
	}
	in, ok, problem := translateTask(s, found[0])
	switch {
	case !ok && problem.text != "":
		return model.Instance{}, fmt.Errorf("task %s is not meshed: %s", id, problem.text)
	case !ok:
		return model.Instance{}, fmt.Errorf("task %s is not a running meshed task", id)
	case in.Meta[model.MetaProxyMode] != model.ProxyModeNode:
		return model.Instance{}, fmt.Errorf("task %s did not choose node mode (label %s=%s), so no node proxy may serve it; it joins with its own sidecar", id, LabelProxyMode, NodeProxyValue)
	}
	return in, nil
}

// stateFor is the state to check a credential against: the watch's cache
// when it says ok, else the master's state read now (a task launched a
// moment ago may not be in the cache yet; a refusal is always the master's
// latest word).
func (a *Adapter) stateFor(ctx context.Context, cfg *config, w *watcher, ok func(*State) bool) (*State, error) {
	var c *client
	if w != nil {
		if s, err := w.fetch(ctx); err == nil {
			if ok(s) {
				return s, nil
			}
		}
		c = w.c
	}
	if c == nil {
		masters, err := parseMasters(cfg.masters)
		if err != nil {
			return nil, fmt.Errorf("checking a node proxy with Mesos: %w", err)
		}
		c = newClient(masters, cfg.user, cfg.pass, cfg.media)
	}
	cctx, cancel := context.WithTimeout(ctx, a.callTimeout)
	defer cancel()
	gs, err := c.getState(cctx)
	if err != nil {
		return nil, fmt.Errorf("reading the Mesos master's state to check a node proxy: %w", err)
	}
	return NewState(gs), nil
}

// labelOf is the value of the task's label key ("" without one).
func labelOf(t mesos.Task, key string) string {
	if t.Labels == nil {
		return ""
	}
	for _, l := range t.Labels.Labels {
		if l.Key == key {
			return l.GetValue()
		}
	}
	return ""
}
