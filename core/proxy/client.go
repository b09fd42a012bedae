package proxy

import (
	"github.com/weftmesh/weft/core/proxy/control"
)

// Client is the controller client (core/proxy/control) that drives a
// Proxy: it joins, streams configuration into the proxy and renews its
// certificate.
type Client = control.Client

// ClientOptions configure a Client (control.Options).
type ClientOptions = control.Options

// NewClient returns a controller client that applies configurations and
// credentials to p (a control.Watcher), logging to p's logger unless
// o.Logger is set. Call Run to start it. A proxy serving many instances
// gives each its own client and watcher; the sidecar composes one of each.
//
// When the client can carry the app's health to the controller (it
// implements HealthReporter) and Options.Health is unset, the client
// becomes the proxy's health reporter (SetHealthReporter). Unless
// Options.Beside is set, the proxy's Tap stream (RunTap) runs beside each
// config stream.
func NewClient(p *Proxy, o ClientOptions) (*Client, error) {
	if o.Logger == nil {
		o.Logger = p.log
	}
	if o.Beside == nil {
		o.Beside = p.RunTap
	}
	c, err := control.New(p, o)
	if err != nil {
		return nil, err
	}
	if r, ok := any(c).(HealthReporter); ok && p.opts.Health == nil {
		p.SetHealthReporter(r)
	}
	return c, nil
}
