package plugins

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/plugins/proto"
)

// Handshake is shared by the controller and every adapter plugin. The
// cookie is a UX check (it stops a user from running a plugin binary by
// hand), not a security measure: AutoMTLS protects the connection. The
// cookie never changes; protocol versions are negotiated through
// VersionedPlugins instead.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "WEFT_PLUGIN",
	MagicCookieValue: "6f1d2c8e0b7a4e95a3c4f7d21e8b0a56",
}

// VersionedPlugins is the plugin map for go-plugin, keyed by protocol
// version. A plugin serves impl under ProtocolVersion; a host passes nil.
func VersionedPlugins(impl Adapter) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCAdapterPlugin{Impl: impl}},
	}
}

// GRPCAdapterPlugin is the go-plugin GRPCPlugin for the Adapter interface.
// Impl is set on the plugin side only.
type GRPCAdapterPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Adapter
}

// GRPCServer registers the server shim for Impl.
func (p *GRPCAdapterPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("serving adapter plugin: no Adapter implementation given")
	}
	proto.RegisterAdapterServer(s, &GRPCServer{Impl: p.Impl})
	return nil
}

// GRPCClient returns the client shim, an Adapter.
func (p *GRPCAdapterPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &GRPCClient{Client: proto.NewAdapterClient(c)}, nil
}

// LogLevelEnv is the environment variable in which the host gives an
// adapter plugin the lowest level its log takes (trace, debug, info, warn,
// error): the SDK's logger (sdk.Logger) writes nothing below it, so a
// plugin spends nothing on lines the controller would drop.
const LogLevelEnv = "WEFT_PLUGIN_LOG_LEVEL"

// ClientConfig is the go-plugin client configuration a host uses to launch
// an adapter plugin: gRPC only, AutoMTLS, version negotiation, not managed
// (the caller kills the client it made).
func ClientConfig(cmd *exec.Cmd, logger hclog.Logger) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          false,
		Logger:           logger,
	}
}

// ErrIncompatibleVersion is matched (errors.Is) by the errors Dispense and
// CheckInfo return when a plugin speaks another adapter protocol version.
var ErrIncompatibleVersion = errors.New("incompatible adapter protocol version")

// Dispense starts the plugin of c if needed, negotiates the protocol
// version and returns the plugin's Adapter.
func Dispense(c *plugin.Client) (Adapter, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, explainStart(err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispensing adapter plugin: %w", err)
	}
	a, ok := raw.(Adapter)
	if !ok {
		return nil, fmt.Errorf("dispensing adapter plugin: got %T, not an Adapter", raw)
	}
	return a, nil
}

// explainStart says what to do about go-plugin's start errors that a
// plugin author or operator can fix.
func explainStart(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "incompatible API version"):
		return fmt.Errorf("%w: the plugin does not speak Weft adapter protocol %d; "+
			"rebuild it against this version of plugins/sdk or install a release made for this controller (%s)",
			ErrIncompatibleVersion, ProtocolVersion, msg)
	case strings.Contains(msg, "incompatible core API version"):
		return fmt.Errorf("starting adapter plugin: it was built with an incompatible go-plugin; rebuild it against plugins/sdk: %w", err)
	default:
		return fmt.Errorf("starting adapter plugin: %w", err)
	}
}

// CheckInfo verifies what an adapter reported in Info: a name, the
// protocol version this build speaks, and options it can mean.
func CheckInfo(info *InfoResponse) error {
	if info == nil {
		return errors.New("checking adapter info: the adapter returned no InfoResponse")
	}
	if info.Name == "" {
		return errors.New("checking adapter info: the adapter reports no name; set InfoResponse.Name")
	}
	if info.ProtocolVersion != ProtocolVersion {
		return fmt.Errorf("%w: adapter %q reports protocol version %d, this build speaks %d; "+
			"set InfoResponse.ProtocolVersion to plugins.ProtocolVersion and rebuild it against this version of plugins/sdk",
			ErrIncompatibleVersion, info.Name, info.ProtocolVersion, ProtocolVersion)
	}
	if err := checkSpecs(info.Options); err != nil {
		return fmt.Errorf("checking adapter info: adapter %q declares its options wrongly: %w; fix InfoResponse.Options", info.Name, err)
	}
	return nil
}

var _ plugin.GRPCPlugin = (*GRPCAdapterPlugin)(nil)
