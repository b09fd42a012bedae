package sdk

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/weftmesh/weft/plugins"
)

// How often Serve checks whether the host is still its parent.
const parentPollInterval = 250 * time.Millisecond

// How long Serve waits, after the host's shutdown, for running Watch calls
// to return before it calls Close. go-plugin kills a plugin that has not
// exited 2 seconds after the shutdown, so Close has what remains.
const watchDrainTimeout = 500 * time.Millisecond

// Serve serves a as a go-plugin gRPC plugin and returns when the host has
// shut it down. Call it from main and return from main when it returns.
//
// Shutdown: when the host shuts the plugin down gracefully, running Watch
// calls are cancelled and, if a implements io.Closer, Close is called
// before Serve returns. Close must be quick: the host kills a plugin that
// has not exited 2 seconds after asking it to. If the host dies instead
// (it was killed, it crashed), the plugin process exits within a second
// without calling Close, so that whatever the adapter started keeps
// running for the next host to adopt.
//
// Run by hand (not by a Weft controller), Serve prints that the binary is
// a plugin and exits with status 1.
func Serve(a Adapter) {
	logger := Logger()
	stopWatching := watchParent()
	defer stopWatching()

	t := &tracked{Adapter: a}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugins.Handshake,
		VersionedPlugins: plugins.VersionedPlugins(t),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger,
	})

	stopWatching()
	t.wait(watchDrainTimeout)
	if c, ok := a.(io.Closer); ok {
		if err := c.Close(); err != nil {
			logger.Error("closing adapter after the host shut it down", "error", err)
		}
	}
}

var (
	loggerOnce sync.Once
	logger     hclog.Logger
)

// Logger returns the plugin's logger. It writes JSON to the process's
// standard error, which the host reads and merges into its own log under
// the plugin's name, in the controller's format. Its level is the
// controller's (the host sets plugins.LogLevelEnv); without it, trace, and
// the host filters.
func Logger() hclog.Logger {
	loggerOnce.Do(func() {
		logger = hclog.New(&hclog.LoggerOptions{
			Level:      logLevel(os.Getenv(plugins.LogLevelEnv)),
			Output:     os.Stderr,
			JSONFormat: true,
		})
	})
	return logger
}

// logLevel reads plugins.LogLevelEnv: trace when unset or not a level.
func logLevel(s string) hclog.Level {
	if l := hclog.LevelFromString(s); l != hclog.NoLevel && l != hclog.Off {
		return l
	}
	return hclog.Trace
}

// watchParent exits the process, without running any cleanup, as soon as
// the process that started it is gone: the host died without shutting the
// plugin down. It returns a function that stops the watch.
func watchParent() (stop func()) {
	ppid := os.Getppid()
	done := make(chan struct{})
	var once sync.Once
	stop = func() { once.Do(func() { close(done) }) }
	if ppid <= 1 {
		// Started by init, or already orphaned: there is no host to watch.
		return stop
	}
	go func() {
		tick := time.NewTicker(parentPollInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if os.Getppid() != ppid {
					// Nothing is logged: standard error led to the host,
					// and a write to it now would fail.
					os.Exit(0)
				}
			}
		}
	}()
	return stop
}

// tracked counts the adapter's running Watch calls so that Serve can let
// them return before it calls Close.
type tracked struct {
	Adapter
	watches sync.WaitGroup
}

func (t *tracked) Watch(ctx context.Context, req *WatchRequest, events chan<- WatchEvent) error {
	t.watches.Add(1)
	defer t.watches.Done()
	return t.Adapter.Watch(ctx, req, events)
}

// VerifyIdentity passes the call on if the adapter verifies identities,
// so that wrapping an adapter hides none of its optional interfaces.
func (t *tracked) VerifyIdentity(ctx context.Context, req *VerifyIdentityRequest) (*VerifyIdentityResponse, error) {
	v, ok := t.Adapter.(IdentityVerifier)
	if !ok {
		return nil, errors.New("this adapter does not verify scheduler credentials (it lacks the verifies-identity capability)")
	}
	return v.VerifyIdentity(ctx, req)
}

func (t *tracked) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		t.watches.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// PluginEnv reports whether the environment variable named key is one the
// host set for this plugin process (the handshake cookie, go-plugin's
// PLUGIN_*). A process the adapter starts should not inherit it: it is no
// plugin.
func PluginEnv(key string) bool {
	return key == plugins.Handshake.MagicCookieKey || strings.HasPrefix(key, "PLUGIN_")
}
