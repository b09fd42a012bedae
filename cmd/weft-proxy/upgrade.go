package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

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

// watchReady logs once ready reports true, and then writes readyFile
// (when not ""): the node proxy's readiness, per process, where the admin
// ports, shared with --reuse-port, cannot tell which process answers. The
// file goes when ctx ends (SIGTERM), before the drain, and a stale one is
// removed at the start. `weft-proxy ready --file PATH` is the probe that
// reads it (a Kubernetes exec probe; the image has no shell).
func watchReady(ctx context.Context, base *slog.Logger, readyFile string, ready func() bool) {
	if readyFile != "" {
		os.Remove(readyFile)
	}
	start := time.Now()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	base.Info("node proxy ready: every instance holds its certificate and configuration", "took", time.Since(start).Round(time.Millisecond), "ready_file", readyFile)
	if readyFile == "" {
		return
	}
	if err := os.WriteFile(readyFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		base.Error("writing the ready file; the readiness probe will fail", "file", readyFile, "err", err)
		return
	}
	<-ctx.Done()
	os.Remove(readyFile)
}

// proxiesReady is ready for a fixed set of proxies.
func proxiesReady(proxies []*proxy.Proxy) func() bool {
	return func() bool {
		for _, p := range proxies {
			if p.Ready() != nil {
				return false
			}
		}
		return true
	}
}

// newReadyCmd is `weft-proxy ready --file PATH`: exit 0 when the node
// proxy that was given --ready-file PATH is ready.
func newReadyCmd() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "ready --file PATH",
		Short: "Exit 0 when the node proxy run with --ready-file PATH is ready (a readiness probe)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New(`required flag "file" not set: give the node proxy's --ready-file`)
			}
			if _, err := os.Stat(file); err != nil {
				return fmt.Errorf("not ready: %w (the node proxy writes it once every instance it serves holds a certificate and a configuration, and removes it when it stops)", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&file, "file", "", "the node proxy's --ready-file")
	return c
}

// checkReadyFile refuses --ready-file where no readiness is kept.
func checkReadyFile(o options) error {
	switch {
	case o.readyFile == "":
		return nil
	case o.node == "":
		return errors.New("--ready-file needs --node: a sidecar's readiness is GET /ready on its --admin address")
	case o.serveFile != "":
		return errors.New("--ready-file does not go with --serve-file yet: give the instances with --serve, or let the node proxy discover them")
	}
	return nil
}
