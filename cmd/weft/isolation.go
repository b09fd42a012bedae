package main

import (
	"github.com/weftmesh/weft/core/model"
)

// isolationCell is the ISOLATION column of `weft status`: loud when the
// app port is open.
func isolationCell(iso string) string {
	switch model.Isolation(iso) {
	case model.IsolationGuard, model.IsolationNetNS:
		return iso
	default:
		return "NONE (app port open)"
	}
}
