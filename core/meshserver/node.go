package meshserver

import (
	"errors"

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
