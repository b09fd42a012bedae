package plugintest

import (
	"testing"
	"time"

	plugin "github.com/hashicorp/go-plugin"

	"github.com/weftmesh/weft/plugins"
)

// GRPC serves impl through the real gRPC shims of package plugins over an
// in-memory go-plugin connection (a Unix socket in a temporary directory)
// and returns the client side. The connection is closed at test cleanup.
func GRPC(t testing.TB, impl plugins.Adapter) plugins.Adapter {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{
		plugins.PluginName: &plugins.GRPCAdapterPlugin{Impl: impl},
	})
	t.Cleanup(func() {
		// Close asks the server to stop (go-plugin's Shutdown RPC); stop it
		// directly only if that did not work, never both at once.
		_ = client.Close()
		select {
		case <-server.DoneCh:
		case <-time.After(5 * time.Second):
			server.Stop()
		}
	})
	raw, err := client.Dispense(plugins.PluginName)
	if err != nil {
		t.Fatalf("dispensing adapter over in-memory gRPC: %v", err)
	}
	a, ok := raw.(plugins.Adapter)
	if !ok {
		t.Fatalf("dispensing adapter over in-memory gRPC: got %T, not a plugins.Adapter", raw)
	}
	return a
}
