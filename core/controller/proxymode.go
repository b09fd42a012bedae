package controller

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshserver"
	"github.com/weftmesh/weft/core/policy"
)

// AdmitShared implements meshserver.ProxyPolicy with the policy in force:
// whether a shared proxy of kind ("node", "application") may hold the
// certificates of service's instances (policy.Policy.AdmitShared: the
// service's proxy_mode, else the mesh's default_proxy_mode, else the
// scheduler decides). Before any policy: Unavailable, as Allowed.
func (c *Controller) AdmitShared(service, kind string) error {
	p := c.Policy()
	if p == nil {
		return status.Error(codes.Unavailable, "the controller has no policy yet; retry shortly")
	}
	return p.AdmitShared(service, policy.ProxyMode(kind))
}

var _ meshserver.ProxyPolicy = (*Controller)(nil)
