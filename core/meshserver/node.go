package meshserver

import (
	"context"
	"errors"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/spiffe"
)

// joinForNode admits a node proxy (docs/deployment-models.md) for one of
// the instances of its node. ok is false when the request's token is not a
// node token: Join goes on with it as an instance's join token.
//
// The rule that keeps a node's compromise to that node: the token names a
// node (the adapter that runs the node minted it), and the certificate is
// issued only for an instance that the same adapter's latest snapshot
// places on that node (model.Instance.Node, which the adapter fills from
// its scheduler: never from what the proxy says). An instance whose adapter
// reports no node is refused to every node proxy. The binding check is the
// same as for a sidecar. Each (token, instance) pair is spent once.
//
// An application token (ca.IsApplicationToken) is a node token narrowed to
// one service: the proxy it admits, shared by one application's instances
// on the node, gets only that service's certificates, in that namespace,
// on that node.
func (s *Server) joinForNode(req *meshapi.JoinRequest) (creds *meshapi.Credentials, ok bool, err error) {
	var id spiffe.Identity
	var node, scope string
	_, err = s.o.Join.VerifyNodeAnd(req.JoinToken, req.InstanceId, func(c ca.JoinClaims) error {
		node = c.Node
		if c.IsApplicationToken() {
			scope = appNS(c.Namespace) + "/" + c.Service
		}
		in, found := s.o.Workloads.Lookup(c.Adapter, req.InstanceId)
		switch {
		case !found:
			return status.Errorf(codes.Unavailable, "instance %q is not in adapter %s's snapshot yet; retry shortly", req.InstanceId, c.Adapter)
		case in.Node == "":
			return status.Errorf(codes.PermissionDenied, "adapter %s reports no node for instance %q, so no node proxy may serve it; give the instance a sidecar", c.Adapter, req.InstanceId)
		case in.Node != c.Node:
			return status.Errorf(codes.PermissionDenied, "the node proxy of node %q may not serve instance %q: its scheduler placed it on node %q", c.Node, req.InstanceId, in.Node)
		case c.IsApplicationToken() && (in.Service != c.Service || in.NS() != appNS(c.Namespace)):
			return status.Errorf(codes.PermissionDenied, "the proxy of application %s/%s on node %q may not serve instance %q: it is an instance of %s/%s", appNS(c.Namespace), c.Service, c.Node, req.InstanceId, in.NS(), in.Service)
		}
		kind := ProxyKindNode
		if c.IsApplicationToken() {
			kind = ProxyKindApplication
		}
		if err := s.checkProxyMode(in, kind); err != nil {
			return err
		}
		if err := s.checkBinding("join", c.Adapter, in); err != nil {
			return err
		}
		id = spiffe.Identity{TrustDomain: s.o.Workloads.TrustDomain(), Namespace: in.NS(), Service: in.Service}
		var err error
		creds, err = s.issue(req.CsrDer, id)
		return err
	})
	if errors.Is(err, ca.ErrNotNodeToken) {
		return nil, false, nil
	}
	if err != nil {
		s.o.Logger.Warn("node proxy join refused", "instance", req.InstanceId, "node", node, "err", err)
		if _, isStatus := status.FromError(err); isStatus {
			return nil, true, err
		}
		if errors.Is(err, ca.ErrSpend) {
			return nil, true, status.Error(codes.Unavailable, err.Error()+"; retry shortly")
		}
		return nil, true, status.Error(codes.Unauthenticated, err.Error())
	}
	s.recordLeaf(req.InstanceId, creds)
	if scope != "" {
		s.o.Logger.Info("application proxy joined for an instance", "instance", req.InstanceId, "node", node, "application", scope, "identity", id.String())
		return creds, true, nil
	}
	s.o.Logger.Info("node proxy joined for an instance", "instance", req.InstanceId, "node", node, "identity", id.String())
	return creds, true, nil
}

// appNS is an application token's namespace, defaulted.
func appNS(ns string) string {
	return model.Instance{Namespace: ns}.NS()
}

// NodeLister is what NodeInstances needs beside Workloads: the instances
// an adapter's latest snapshot places on a node. core/controller.Controller
// implements it; a Workloads without it answers no node proxy.
type NodeLister interface {
	OnNode(adapter, node string) []model.Instance
}

// servesNodeMode reports whether in chose to be served by a node proxy
// that its scheduler runs (model.MetaProxyMode).
func servesNodeMode(in model.Instance) bool {
	return in.Meta[model.MetaProxyMode] == model.ProxyModeNode
}

// joinNodeWithCredential admits a node proxy that the scheduler runs
// itself (a Nomad system job) and that joins with its own scheduler
// credential for one instance of its node. The adapter has checked the
// credential, that it is a node proxy's, and the instance it asks for (c
// names the node it runs on); the controller checks again, against the
// adapter's latest snapshot, what keeps a node's compromise to that node:
// the instance is on the node the credential proves, and it chose node
// mode. Then the binding check, as for a sidecar.
func (s *Server) joinNodeWithCredential(req *meshapi.JoinRequest, c CredentialClaims) (*meshapi.Credentials, error) {
	refuse := func(code codes.Code, format string, args ...any) (*meshapi.Credentials, error) {
		err := status.Errorf(code, format, args...)
		s.o.Logger.Warn("node proxy join refused", "instance", req.InstanceId, "adapter", req.CredentialAdapter, "node", c.Node, "err", err)
		return nil, err
	}
	if c.Instance != req.InstanceId {
		return refuse(codes.PermissionDenied, "the %s credential of the node proxy of node %q is for instance %q, not %q", req.CredentialAdapter, c.Node, c.Instance, req.InstanceId)
	}
	in, ok := s.o.Workloads.Lookup(req.CredentialAdapter, req.InstanceId)
	switch {
	case !ok:
		return refuse(codes.Unavailable, "instance %q is not in adapter %s's snapshot yet; retry shortly", req.InstanceId, req.CredentialAdapter)
	case in.Node == "":
		return refuse(codes.PermissionDenied, "adapter %s reports no node for instance %q, so no node proxy may serve it", req.CredentialAdapter, req.InstanceId)
	case in.Node != c.Node:
		return refuse(codes.PermissionDenied, "the node proxy of node %q may not serve instance %q: its scheduler placed it on node %q", c.Node, req.InstanceId, in.Node)
	case !servesNodeMode(in):
		return refuse(codes.PermissionDenied, "instance %q did not choose node mode (%s=%s), so no node proxy may serve it; it joins with its own sidecar", req.InstanceId, model.MetaProxyMode, model.ProxyModeNode)
	case in.Service != c.Service || in.NS() != nsOr(c.Namespace):
		return refuse(codes.PermissionDenied, "the %s credential proves service %s/%s but instance %q runs %s/%s",
			req.CredentialAdapter, nsOr(c.Namespace), c.Service, req.InstanceId, in.NS(), in.Service)
	}
	// The scheduler chose node mode (the tag, checked above); policy must
	// agree, or say nothing.
	if err := s.checkProxyMode(in, ProxyKindNode); err != nil {
		s.o.Logger.Warn("node proxy join refused", "instance", req.InstanceId, "node", c.Node, "err", err)
		return nil, err
	}
	if err := s.checkBinding("join", req.CredentialAdapter, in); err != nil {
		s.o.Logger.Warn("node proxy join refused", "instance", req.InstanceId, "node", c.Node, "err", err)
		return nil, err
	}
	id := spiffe.Identity{TrustDomain: s.o.Workloads.TrustDomain(), Namespace: in.NS(), Service: in.Service}
	creds, err := s.issue(req.CsrDer, id)
	if err != nil {
		return nil, err
	}
	s.recordLeaf(req.InstanceId, creds)
	s.o.Logger.Info("node proxy joined for an instance", "instance", req.InstanceId, "node", c.Node, "identity", id.String(), "credential", req.CredentialAdapter)
	return creds, nil
}

// NodeInstances answers a node proxy the scheduler runs (a Nomad system
// job) which instances to serve: those its adapter's latest snapshot
// places on the node its credential proves and that chose node mode,
// sorted. The node proxy polls it, and joins each instance it lists with
// the same credential (joinNodeWithCredential checks each again).
func (s *Server) NodeInstances(ctx context.Context, req *meshapi.NodeInstancesRequest) (*meshapi.NodeInstancesResponse, error) {
	refuse := func(code codes.Code, format string, args ...any) (*meshapi.NodeInstancesResponse, error) {
		err := status.Errorf(code, format, args...)
		s.o.Logger.Warn("node instances refused", "adapter", req.CredentialAdapter, "err", err)
		return nil, err
	}
	lister, ok := s.o.Workloads.(NodeLister)
	switch {
	case req.CredentialAdapter == "" || req.Credential == "":
		return refuse(codes.InvalidArgument, "a node proxy asks for its instances with its scheduler credential: set credential_adapter and credential")
	case s.o.VerifyCredential == nil:
		return refuse(codes.FailedPrecondition, "this controller does not accept scheduler credentials; a node proxy it does not start cannot join")
	case !ok:
		return refuse(codes.Unimplemented, "this controller cannot list a node's instances")
	}
	c, err := s.o.VerifyCredential(ctx, req.CredentialAdapter, "", req.Credential)
	if errors.Is(err, ErrRetry) {
		return refuse(codes.Unavailable, "checking the %s credential: %v", req.CredentialAdapter, err)
	}
	if err != nil {
		return refuse(codes.PermissionDenied, "the %s credential proves no node proxy: %v", req.CredentialAdapter, err)
	}
	if c.Node == "" {
		return refuse(codes.PermissionDenied, "the %s credential is not a node proxy's: mark its job as a node proxy (docs/deployment-models.md)", req.CredentialAdapter)
	}
	var ids []string
	for _, in := range lister.OnNode(req.CredentialAdapter, c.Node) {
		// An instance policy keeps from node proxies is not listed: the
		// proxy would only be refused its certificate. Status lists it as
		// refused (reason proxy_mode_refused).
		if in.Node == c.Node && servesNodeMode(in) && s.proxyModeAllows(in, ProxyKindNode) == nil {
			ids = append(ids, in.ID)
		}
	}
	sort.Strings(ids)
	return &meshapi.NodeInstancesResponse{Node: c.Node, InstanceIds: ids}, nil
}

// The kinds of shared proxy, as policy names them (core/policy.ProxyMode).
const (
	ProxyKindNode        = "node"
	ProxyKindApplication = "application"
)

// ProxyPolicy is what the shared proxies' checks read beside Workloads:
// whether the policy in force lets a shared proxy of a kind (ProxyKindNode,
// ProxyKindApplication) hold the certificates of a service's instances (a
// service's proxy_mode, or the mesh's default_proxy_mode: core/policy.
// Policy.AdmitShared). core/controller.Controller implements it; a
// Workloads without it leaves the choice to the scheduler alone.
type ProxyPolicy interface {
	AdmitShared(service, kind string) error
}

// proxyModeAllows asks the ProxyPolicy, if Workloads is one.
func (s *Server) proxyModeAllows(in model.Instance, kind string) error {
	pp, ok := s.o.Workloads.(ProxyPolicy)
	if !ok {
		return nil
	}
	return pp.AdmitShared(in.Service, kind)
}

// checkProxyMode is proxyModeAllows as a Join's answer: PermissionDenied
// naming the instance and what policy says (or the code the ProxyPolicy
// chose: Unavailable before any policy), logged as a refusal by policy.
func (s *Server) checkProxyMode(in model.Instance, kind string) error {
	err := s.proxyModeAllows(in, kind)
	if err == nil {
		return nil
	}
	s.o.Logger.Warn("shared proxy refused by policy proxy_mode", "instance", in.ID, "service", in.Service, "proxy", kind, "err", err)
	if _, isStatus := status.FromError(err); isStatus {
		return err
	}
	return status.Errorf(codes.PermissionDenied, "the %s proxy may not serve instance %q: %v", kind, in.ID, err)
}
