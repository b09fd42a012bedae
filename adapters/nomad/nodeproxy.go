package nomad

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/api"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
)

// The node proxy on Nomad (docs/deployment-models.md): a system job runs
// one weft-proxy per client node in node mode; it joins with its own
// task's workload identity and serves the meshed instances of its node
// that chose node mode.
const (
	// MetaNodeProxy, as job or group meta weft_proxy = "node", marks the
	// job whose allocations are node proxies. Only a task of such a group
	// may ask for another allocation's instance.
	MetaNodeProxy = "weft_proxy"
	// NodeProxyValue is MetaNodeProxy's value.
	NodeProxyValue = "node"
	// TagProxyMode, as a service tag weft_proxy_mode=node, opts the
	// service's instances into the node proxy of their node (their group
	// then has no sidecar task). A key=value tag goes to the instance's
	// Meta, where the controller reads it (model.MetaProxyMode).
	TagProxyMode = model.MetaProxyMode
)

// markedNodeProxy reports whether alloc's job, or its group, carries
// meta weft_proxy = "node".
func markedNodeProxy(alloc *api.Allocation) bool {
	if alloc.Job == nil {
		return false
	}
	if alloc.Job.Meta[MetaNodeProxy] == NodeProxyValue {
		return true
	}
	for _, tg := range alloc.Job.TaskGroups {
		if tg != nil && tg.Name != nil && *tg.Name == alloc.TaskGroup {
			return tg.Meta[MetaNodeProxy] == NodeProxyValue
		}
	}
	return false
}

// verifyNodeProxy checks a node proxy's own workload identity and, when
// allocID is set, the instance allocID/service it asks to serve. The
// identity must be Nomad's own (proveIdentity: signature, running
// allocation), of a job or group marked weft_proxy = "node"; the instance
// must run on the node proxy's own node (the allocations' NodeID, as Nomad
// reports it) and its service registration must carry the tag
// weft_proxy_mode=node. The answer names the node (its NodeID, as
// model.Instance.Node does), which the controller checks again against
// the snapshot.
func verifyNodeProxy(ctx context.Context, cfg *config, claims Claims, credential, allocID, service string) (*sdk.VerifyIdentityResponse, error) {
	own, err := proveIdentity(ctx, cfg, claims, credential)
	if err != nil {
		return nil, err
	}
	if !markedNodeProxy(own) {
		if allocID == "" {
			return nil, fmt.Errorf("allocation %s of job %s is not a node proxy: only a job or group with meta %s = %q may ask for its node's instances", own.ID, own.JobID, MetaNodeProxy, NodeProxyValue)
		}
		return nil, fmt.Errorf("the workload identity is for allocation %s, not %s: a sidecar presents its own task's identity, and job %s is not a node proxy (meta %s = %q)", own.ID, allocID, own.JobID, MetaNodeProxy, NodeProxyValue)
	}
	if own.NodeID == "" {
		return nil, fmt.Errorf("Nomad reports no node for node proxy allocation %s", own.ID)
	}
	if allocID == "" {
		return &sdk.VerifyIdentityResponse{Node: own.NodeID}, nil
	}
	target, _, err := cfg.client.Allocations().Info(allocID, (&api.QueryOptions{Namespace: cfg.namespace}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reading allocation %s from Nomad: %w", allocID, err)
	}
	switch {
	case target.NodeID != own.NodeID:
		return nil, fmt.Errorf("the node proxy of node %s may not serve allocation %s: Nomad placed it on node %s", own.NodeID, allocID, target.NodeID)
	case target.ClientTerminalStatus() || target.DesiredStatus != api.AllocDesiredStatusRun:
		return nil, fmt.Errorf("allocation %s has stopped; no proxy serves it", allocID)
	}
	reg, err := registration(ctx, cfg, target.Namespace, allocID, service)
	if err != nil {
		return nil, err
	}
	if _, meta := splitTags(reg.Tags); meta[TagProxyMode] != model.ProxyModeNode {
		return nil, fmt.Errorf("service %s of allocation %s did not choose node mode (tag %s=%s), so no node proxy may serve it", service, allocID, TagProxyMode, model.ProxyModeNode)
	}
	return &sdk.VerifyIdentityResponse{InstanceID: allocID + "/" + service, Service: service, Namespace: target.Namespace, Node: own.NodeID}, nil
}
