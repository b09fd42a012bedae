package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/weftmesh/weft/core/proxy"
)

// Upgrading a node proxy in place (docs/deployment-models.md, "Upgrades
// and failure"): the new process starts beside the old one, both with
// --reuse-port, so that both listen on every port the node's instances
// use; once the new one logs that it is ready, the old one is sent
// SIGTERM. At once it closes every listener (so the kernel gives every
// new connection to the new process) and lets its open connections
// finish, for up to its drain timeout (core/proxy Options.DrainTimeout,
// 5s), before it exits.
//
// --reuse-port is on by default with --node: an upgrade needs it on the
// process that runs, not only on the new one, so a default off would cost
// every first upgrade a gap. The node proxy should run under a user of
// its own: Linux lets only sockets of the same effective UID share a port
// (core/proxy, reuseport.go), and that user's processes could read the
// proxy's keys anyway. A sidecar is replaced with its instance, so it
// keeps the option off unless asked.

// reusePortDefault is --reuse-port when it is not given: on for a node
// proxy, off for a sidecar or a gateway.
func reusePortDefault(o options) bool { return o.node != "" }

// reusePortHint is what an admin listener's failed bind adds.
func reusePortHint(reusePort bool) string {
	if reusePort {
		return "; a process holding it without --reuse-port, or as another user, keeps it to itself: start both with --reuse-port under one user"
	}
	return "; to start a new weft-proxy beside a running one (an upgrade), run both with --reuse-port (the default with --node)"
}

// drainTimeout is the drain timeout of the proxies weft-proxy composes
// (core/proxy's default).
const drainTimeout = 5 * time.Second

// closeOnStop closes every closer as soon as ctx is done, without waiting
// for the controller clients to wind down: listeners close first, then
// open connections drain. The returned wait, deferred by the caller,
// waits for that to end if it started, else cancels it (the caller then
// closes them itself).
func closeOnStop(ctx context.Context, base *slog.Logger, closers []io.Closer) (wait func()) {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		start := time.Now()
		base.Info("node proxy stopping: closing every listener; open connections drain", "drain_timeout", drainTimeout)
		closeAll(closers)
		base.Info("node proxy stopped: listeners closed and connections drained", "took", time.Since(start).Round(time.Millisecond))
	})
	return func() {
		if !stop() {
			<-done
		}
	}
}

// logWhenReady logs once every proxy holds a certificate and a
// configuration: the node proxy's readiness, per process (the admin
// ports, shared with --reuse-port, cannot tell which process answers).
func logWhenReady(ctx context.Context, base *slog.Logger, proxies []*proxy.Proxy) {
	start := time.Now()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		ready := true
		for _, p := range proxies {
			if p.Ready() != nil {
				ready = false
				break
			}
		}
		if ready {
			base.Info("node proxy ready: every instance holds its certificate and configuration", "instances", len(proxies), "took", time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
