package host

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/weftmesh/weft/plugins"
)

// ErrNotRunning is returned by Handle calls while no plugin process runs
// (between a crash and its restart). Callers may retry.
var ErrNotRunning = errors.New("the adapter plugin is not running right now (it is being restarted); retry shortly")

// Handle lets the controller call a supervised adapter between snapshots,
// for example to verify a sidecar's scheduler credential. Pass one in
// Options.Handle; Supervise points it at each plugin process it starts.
type Handle struct {
	mu   sync.Mutex
	a    plugins.Adapter
	info *plugins.InfoResponse
}

func (h *Handle) set(a plugins.Adapter, info *plugins.InfoResponse) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.a, h.info = a, info
}

// VerifyIdentity asks the adapter what a scheduler credential proves.
func (h *Handle) VerifyIdentity(ctx context.Context, req *plugins.VerifyIdentityRequest) (*plugins.VerifyIdentityResponse, error) {
	h.mu.Lock()
	a, info := h.a, h.info
	h.mu.Unlock()
	if a == nil || info == nil {
		return nil, ErrNotRunning
	}
	if !info.Has(plugins.CapVerifiesIdentity) {
		return nil, fmt.Errorf("adapter %s cannot verify scheduler credentials (it does not announce %q); start the sidecar with a join token instead", info.Name, plugins.CapVerifiesIdentity)
	}
	v, ok := a.(plugins.IdentityVerifier)
	if !ok {
		return nil, fmt.Errorf("adapter %s announces %q but its client does not implement it", info.Name, plugins.CapVerifiesIdentity)
	}
	return v.VerifyIdentity(ctx, req)
}
