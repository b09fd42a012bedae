package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/version"
)

// The node proxy a scheduler runs (a Nomad system job,
// docs/deployment-models.md):
//
//	weft-proxy --node NAME --credential-adapter nomad --credential-env NOMAD_TOKEN \
//	  --controller HOST:PORT --trust-bundle FILE [--data-dir DIR] [--discover-interval 2s]
//
// takes no --serve: it asks the controller (NodeInstances, with its own
// task's workload identity) which instances of its node chose node mode,
// every --discover-interval, and serves each as runNode does (one
// core/proxy.Proxy and one controller client, joining with the same
// credential for that instance). An instance that appears is started, one
// that is gone is stopped; the others are not touched, so their
// connections stay open. An instance whose client ends (the controller
// refused it) is started again at a later poll if it is still listed.
// There are no per-instance admin endpoints in this mode: each instance's
// golden signals go to the controller as a sidecar's do.

// discoverer serves the instances the controller lists for this node.
type discoverer struct {
	o          options
	base       *slog.Logger
	controller string
	tls        *tls.Config
	newProxy   func(id string) *proxy.Proxy
	clientOpts func(id string) proxy.ClientOptions

	mu      sync.Mutex
	running map[string]*servedInstance
	polled  bool // a poll has been answered
	wg      sync.WaitGroup
}

// servedInstance is one instance the discovering node proxy serves.
type servedInstance struct {
	proxy  *proxy.Proxy
	cancel context.CancelFunc
	done   chan struct{}
}

// ready reports whether the controller has answered a poll and every
// instance it listed holds a certificate and a configuration.
func (d *discoverer) ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.polled {
		return false
	}
	for _, s := range d.running {
		select {
		case <-s.done:
			continue // refused by the controller: it does not hold the others back
		default:
		}
		if s.proxy.Ready() != nil {
			return false
		}
	}
	return true
}

// controllerTLSConfig verifies a controller against the trust bundle; the
// node proxy presents no certificate (it has none of its own).
func controllerTLSConfig(addr string, bundle *x509.CertPool) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("reading controller address %q: %w", addr, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, RootCAs: bundle}, nil
}

// run polls until ctx is done, then stops every instance.
func (d *discoverer) run(ctx context.Context, credential func() (string, error)) error {
	cc, err := grpc.NewClient("passthrough:///"+d.controller,
		grpc.WithTransportCredentials(credentials.NewTLS(d.tls)), grpc.WithNoProxy())
	if err != nil {
		return fmt.Errorf("connecting to controller %s: %w", d.controller, err)
	}
	defer cc.Close()
	mesh := meshapi.NewMeshClient(cc)
	d.base.Info("weft-proxy for node: discovering its instances", "version", version.Version, "controller", d.controller, "interval", d.o.discoverEvery, "reuse_port", d.o.reusePort)
	go watchReady(ctx, d.base, d.o.readyFile, d.ready) // upgrade.go
	t := time.NewTimer(0)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			// Each instance's listeners closed as ctx ended (start).
			stopping := time.Now()
			d.base.Info("node proxy stopping: closing every listener; open connections drain", "drain_timeout", drainTimeout)
			d.stopAll()
			d.base.Info("node proxy stopped: listeners closed and connections drained", "took", time.Since(stopping).Round(time.Millisecond))
			return nil
		case <-t.C:
		}
		ids, err := d.poll(ctx, mesh, credential)
		if err != nil {
			// Logged once per distinct error; the served instances go on.
			if msg := err.Error(); msg != lastErr {
				d.base.Warn("asking the controller for this node's instances", "err", err)
				lastErr = msg
			}
		} else {
			lastErr = ""
			d.reconcile(ctx, ids)
			d.mu.Lock()
			d.polled = true
			d.mu.Unlock()
		}
		t.Reset(d.o.discoverEvery)
	}
}

func (d *discoverer) poll(ctx context.Context, mesh meshapi.MeshClient, credential func() (string, error)) ([]string, error) {
	cred, err := credential()
	if err != nil {
		return nil, fmt.Errorf("reading the %s credential: %w", d.o.credAdapter, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r, err := mesh.NodeInstances(pctx, &meshapi.NodeInstancesRequest{CredentialAdapter: d.o.credAdapter, Credential: cred})
	if err != nil {
		return nil, fmt.Errorf("controller %s: %s", d.controller, status.Convert(err).Message())
	}
	return r.InstanceIds, nil
}

// reconcile starts the listed instances not served yet and stops the
// served ones no longer listed.
func (d *discoverer) reconcile(ctx context.Context, ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, s := range d.running {
		select {
		case <-s.done: // its client ended: start it again if still listed
			delete(d.running, id)
			continue
		default:
		}
		if !slices.Contains(ids, id) {
			d.base.Info("instance left this node proxy", "instance", id)
			s.cancel()
			<-s.done
			delete(d.running, id)
		}
	}
	for _, id := range ids {
		if _, ok := d.running[id]; ok {
			continue
		}
		if err := d.start(ctx, id); err != nil {
			d.base.Error("starting an instance of the node proxy", "instance", id, "err", err)
			continue
		}
		d.base.Info("instance joined this node proxy", "instance", id)
	}
}

// start composes the instance's Proxy and controller client and runs them
// until stop. Called with d.mu held.
func (d *discoverer) start(ctx context.Context, id string) error {
	p := d.newProxy(id)
	client, err := proxy.NewClient(p, d.clientOpts(id))
	if err != nil {
		p.Close()
		return err
	}
	ictx, cancel := context.WithCancel(ctx)
	// A stop (SIGTERM, or the instance leaving) closes its listeners at
	// once; its open connections drain (upgrade.go).
	context.AfterFunc(ictx, func() { p.Close() })
	s := &servedInstance{proxy: p, cancel: cancel, done: make(chan struct{})}
	d.running[id] = s
	logger := d.base.With("instance", id)
	go p.RunReports(ictx, d.o.reportEvery, client)
	go p.RunBudgets(ictx, client)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(s.done)
		defer p.Close()
		defer cancel()
		_ = serveOne(ictx, id, client, logger)
	}()
	return nil
}

func (d *discoverer) stopAll() {
	d.mu.Lock()
	for _, s := range d.running {
		s.cancel()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// instanceDataDir is where an instance of a node proxy keeps its
// certificate: one directory per instance under --data-dir ("" for none).
func instanceDataDir(root, id string) string {
	if root == "" {
		return ""
	}
	return filepath.Join(root, filepath.FromSlash(id))
}

// checkDiscover names what is wrong with a discovering node proxy's flags.
func checkDiscover(o options) error {
	switch {
	case o.credAdapter == "":
		return errors.New("--node without --serve discovers its instances with its own scheduler credential: give --credential-adapter (nomad) and --credential-env (NOMAD_TOKEN)")
	case o.discoverEvery <= 0:
		return errors.New("--discover-interval must be positive")
	}
	return nil
}
