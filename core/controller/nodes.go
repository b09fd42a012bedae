package controller

import "github.com/weftmesh/weft/core/model"

// OnNode lists the instances adapter's latest snapshot places on node
// (meshserver.NodeLister: what a node proxy run by its scheduler is told
// to serve, docs/deployment-models.md).
func (c *Controller) OnNode(adapter, node string) []model.Instance {
	var out []model.Instance
	for _, e := range c.o.Registry.Entries() {
		if e.Adapter == adapter && node != "" && e.Instance.Node == node {
			out = append(out, e.Instance)
		}
	}
	return out
}
