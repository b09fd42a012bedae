package plugins

import (
	"context"
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/proto"
)

// Conversions between the Go types of this package and plugins/proto.
// Empty maps and slices become nil on the way back; Snapshot.Adapter does
// not cross the wire (the host sets it from the adapter's configured name).

func infoToProto(r *InfoResponse) *proto.InfoResponse {
	if r == nil {
		return &proto.InfoResponse{}
	}
	v := r.ProtocolVersion
	if v < 0 || v > math.MaxUint32 {
		v = 0
	}
	return &proto.InfoResponse{
		Name:            r.Name,
		Version:         r.Version,
		ProtocolVersion: uint32(v),
		Capabilities:    nilIfEmpty(r.Capabilities),
		Options:         optionsToProto(r.Options),
	}
}

func optionsToProto(os []OptionSpec) []*proto.OptionSpec {
	if len(os) == 0 {
		return nil
	}
	out := make([]*proto.OptionSpec, len(os))
	for i, o := range os {
		out[i] = &proto.OptionSpec{
			Name:         o.Name,
			Type:         proto.OptionType(o.Type),
			DefaultValue: o.Default,
			Description:  o.Description,
			Required:     o.Required,
			Values:       nilIfEmpty(o.Values),
		}
	}
	return out
}

// optionsFromProto keeps a type it does not know as it is, so that
// CheckInfo refuses it rather than reading it as another.
func optionsFromProto(ps []*proto.OptionSpec) []OptionSpec {
	if len(ps) == 0 {
		return nil
	}
	out := make([]OptionSpec, len(ps))
	for i, p := range ps {
		out[i] = OptionSpec{
			Name:        p.GetName(),
			Type:        OptionType(p.GetType()),
			Default:     p.GetDefaultValue(),
			Description: p.GetDescription(),
			Required:    p.GetRequired(),
			Values:      nilIfEmpty(p.GetValues()),
		}
	}
	return out
}

func infoFromProto(p *proto.InfoResponse) *InfoResponse {
	return &InfoResponse{
		Name:            p.GetName(),
		Version:         p.GetVersion(),
		ProtocolVersion: int(p.GetProtocolVersion()),
		Capabilities:    nilIfEmpty(p.GetCapabilities()),
		Options:         optionsFromProto(p.GetOptions()),
	}
}

func configureRequestToProto(r *ConfigureRequest) *proto.ConfigureRequest {
	if r == nil {
		return &proto.ConfigureRequest{}
	}
	return &proto.ConfigureRequest{
		Source:  r.Source,
		Options: nilIfEmptyMap(r.Options),
		Mesh: &proto.MeshContext{
			TrustDomain:     r.Mesh.TrustDomain,
			ControllerAddrs: nilIfEmpty(r.Mesh.ControllerAddrs),
			TrustBundlePem:  nilIfEmpty(r.Mesh.TrustBundlePEM),
			JoinKey:         nilIfEmpty(r.Mesh.JoinKey),
			ProxyBinary:     r.Mesh.ProxyBinary,
			DataDir:         r.Mesh.DataDir,
		},
	}
}

func configureRequestFromProto(p *proto.ConfigureRequest) *ConfigureRequest {
	m := p.GetMesh()
	return &ConfigureRequest{
		Source:  p.GetSource(),
		Options: nilIfEmptyMap(p.GetOptions()),
		Mesh: MeshContext{
			TrustDomain:     m.GetTrustDomain(),
			ControllerAddrs: nilIfEmpty(m.GetControllerAddrs()),
			TrustBundlePEM:  nilIfEmpty(m.GetTrustBundlePem()),
			JoinKey:         nilIfEmpty(m.GetJoinKey()),
			ProxyBinary:     m.GetProxyBinary(),
			DataDir:         m.GetDataDir(),
		},
	}
}

func configureResponseToProto(r *ConfigureResponse) *proto.ConfigureResponse {
	if r == nil {
		return &proto.ConfigureResponse{}
	}
	return &proto.ConfigureResponse{Diagnostics: diagnosticsToProto(r.Diagnostics)}
}

func configureResponseFromProto(p *proto.ConfigureResponse) *ConfigureResponse {
	return &ConfigureResponse{Diagnostics: diagnosticsFromProto(p.GetDiagnostics())}
}

func diagnosticsToProto(ds []Diagnostic) []*proto.Diagnostic {
	if len(ds) == 0 {
		return nil
	}
	out := make([]*proto.Diagnostic, len(ds))
	for i, d := range ds {
		s := proto.Severity_SEVERITY_ERROR
		if d.Severity == SeverityWarning {
			s = proto.Severity_SEVERITY_WARNING
		}
		out[i] = &proto.Diagnostic{Severity: s, Summary: d.Summary, Detail: d.Detail, Instance: d.Instance, Reason: d.Reason}
	}
	return out
}

// diagnosticsFromProto reads a severity it does not know as an error, the
// safe side.
func diagnosticsFromProto(ps []*proto.Diagnostic) []Diagnostic {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Diagnostic, len(ps))
	for i, p := range ps {
		s := SeverityError
		if p.GetSeverity() == proto.Severity_SEVERITY_WARNING {
			s = SeverityWarning
		}
		out[i] = Diagnostic{Severity: s, Summary: p.GetSummary(), Detail: p.GetDetail(), Instance: p.GetInstance(), Reason: p.GetReason()}
	}
	return out
}

func watchEventToProto(ev WatchEvent) *proto.WatchEvent {
	ins := make([]*proto.Instance, len(ev.Snapshot.Instances))
	for i, in := range ev.Snapshot.Instances {
		ins[i] = instanceToProto(in)
	}
	return &proto.WatchEvent{
		Snapshot:    &proto.Snapshot{Instances: ins},
		Diagnostics: diagnosticsToProto(ev.Diagnostics),
	}
}

func watchEventFromProto(p *proto.WatchEvent) WatchEvent {
	var ins []model.Instance
	if ps := p.GetSnapshot().GetInstances(); len(ps) > 0 {
		ins = make([]model.Instance, len(ps))
		for i, pi := range ps {
			ins[i] = instanceFromProto(pi)
		}
	}
	return WatchEvent{
		Snapshot:    model.Snapshot{Instances: ins},
		Diagnostics: diagnosticsFromProto(p.GetDiagnostics()),
	}
}

// instanceToProto carries a port outside 0..MaxUint32 as 0 so that it still
// fails model.Instance.Validate on the far side instead of wrapping around.
func instanceToProto(in model.Instance) *proto.Instance {
	var ports map[string]uint32
	if len(in.Ports) > 0 {
		ports = make(map[string]uint32, len(in.Ports))
		for k, v := range in.Ports {
			if v < 0 || int64(v) > math.MaxUint32 {
				v = 0
			}
			ports[k] = uint32(v)
		}
	}
	return &proto.Instance{
		Id:         in.ID,
		Service:    in.Service,
		Namespace:  in.Namespace,
		Address:    in.Address,
		Ports:      ports,
		Meta:       nilIfEmptyMap(in.Meta),
		Tags:       nilIfEmpty(in.Tags),
		Health:     string(in.Health),
		Labels:     nilIfEmptyMap(in.Labels),
		Workload:   nilIfEmptyMap(in.Workload),
		Isolation:  string(in.Isolation),
		MeshListen: in.MeshListen,
		Node:       in.Node,
	}
}

func instanceFromProto(p *proto.Instance) model.Instance {
	var ports map[string]int
	if len(p.GetPorts()) > 0 {
		ports = make(map[string]int, len(p.GetPorts()))
		for k, v := range p.GetPorts() {
			ports[k] = int(v)
		}
	}
	return model.Instance{
		ID:         p.GetId(),
		Service:    p.GetService(),
		Namespace:  p.GetNamespace(),
		Address:    p.GetAddress(),
		Ports:      ports,
		Meta:       nilIfEmptyMap(p.GetMeta()),
		Tags:       nilIfEmpty(p.GetTags()),
		Health:     model.Health(p.GetHealth()),
		Labels:     nilIfEmptyMap(p.GetLabels()),
		Workload:   nilIfEmptyMap(p.GetWorkload()),
		Isolation:  model.Isolation(p.GetIsolation()),
		MeshListen: p.GetMeshListen(),
		Node:       p.GetNode(),
	}
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfEmptyMap[K comparable, V any](m map[K]V) map[K]V {
	if len(m) == 0 {
		return nil
	}
	return m
}

// rpcError turns a gRPC error into one that says what failed: the
// caller's cancellation, the adapter's own error (its message), or the
// connection to the plugin.
func rpcError(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", doing, err)
	}
	switch st.Code() {
	case codes.Unknown:
		return fmt.Errorf("%s: the adapter failed: %s", doing, st.Message())
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%s: lost the connection to the adapter plugin (did it exit?): %w", doing, err)
	default:
		return fmt.Errorf("%s: %w", doing, err)
	}
}
