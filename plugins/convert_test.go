package plugins

import (
	"errors"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/core/model"
)

func TestInstanceRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   model.Instance
		want model.Instance
	}{
		{
			name: "full",
			in: model.Instance{
				ID: "web-1", Service: "web", Namespace: "shop", Address: "127.0.0.1",
				Ports:  map[string]int{model.PortApp: 8080, model.PortMesh: 20000},
				Meta:   map[string]string{"version": "v2"},
				Tags:   []string{"a", "b"},
				Health: model.HealthPassing,
				Labels: map[string]string{"pid": "42"},
			},
			want: model.Instance{
				ID: "web-1", Service: "web", Namespace: "shop", Address: "127.0.0.1",
				Ports:  map[string]int{model.PortApp: 8080, model.PortMesh: 20000},
				Meta:   map[string]string{"version": "v2"},
				Tags:   []string{"a", "b"},
				Health: model.HealthPassing,
				Labels: map[string]string{"pid": "42"},
			},
		},
		{
			name: "empty collections come back nil",
			in:   model.Instance{ID: "x", Ports: map[string]int{}, Meta: map[string]string{}, Tags: []string{}},
			want: model.Instance{ID: "x"},
		},
		{
			name: "negative port stays invalid",
			in:   model.Instance{ID: "x", Ports: map[string]int{model.PortMesh: -1}},
			want: model.Instance{ID: "x", Ports: map[string]int{model.PortMesh: 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := instanceFromProto(instanceToProto(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDiagnosticsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   []Diagnostic
		want []Diagnostic
	}{
		{name: "none", in: nil, want: nil},
		{name: "empty becomes nil", in: []Diagnostic{}, want: nil},
		{
			name: "both severities",
			in: []Diagnostic{
				{Severity: SeverityError, Summary: "bad", Detail: "very"},
				{Severity: SeverityWarning, Summary: "meh"},
			},
			want: []Diagnostic{
				{Severity: SeverityError, Summary: "bad", Detail: "very"},
				{Severity: SeverityWarning, Summary: "meh"},
			},
		},
		{
			name: "unknown severity is read as an error",
			in:   []Diagnostic{{Severity: Severity(7), Summary: "odd"}},
			want: []Diagnostic{{Severity: SeverityError, Summary: "odd"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diagnosticsFromProto(diagnosticsToProto(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip: got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestConfigureRequestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *ConfigureRequest
		want *ConfigureRequest
	}{
		{name: "nil is empty", in: nil, want: &ConfigureRequest{}},
		{
			name: "full",
			in: &ConfigureRequest{
				Source:  "/etc/weft/instances.json",
				Options: map[string]string{"poll_interval": "1s"},
				Mesh: MeshContext{
					TrustDomain: "weft.local", ControllerAddrs: []string{"127.0.0.1:7443"},
					TrustBundlePEM: []byte("pem"), JoinKey: []byte("0123456789abcdef"),
					ProxyBinary: "/usr/bin/weft-proxy", DataDir: "/var/lib/weft",
				},
			},
			want: &ConfigureRequest{
				Source:  "/etc/weft/instances.json",
				Options: map[string]string{"poll_interval": "1s"},
				Mesh: MeshContext{
					TrustDomain: "weft.local", ControllerAddrs: []string{"127.0.0.1:7443"},
					TrustBundlePEM: []byte("pem"), JoinKey: []byte("0123456789abcdef"),
					ProxyBinary: "/usr/bin/weft-proxy", DataDir: "/var/lib/weft",
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := configureRequestFromProto(configureRequestToProto(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestInfoRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   *InfoResponse
		want *InfoResponse
	}{
		{name: "nil is empty", in: nil, want: &InfoResponse{}},
		{
			name: "full",
			in:   &InfoResponse{Name: "file", Version: "0.1.0", ProtocolVersion: ProtocolVersion, Capabilities: []string{CapJoinTokens}},
			want: &InfoResponse{Name: "file", Version: "0.1.0", ProtocolVersion: ProtocolVersion, Capabilities: []string{CapJoinTokens}},
		},
		{
			name: "options",
			in: &InfoResponse{Name: "x", Options: []OptionSpec{
				{Name: "mode", Type: OptionEnum, Values: []string{"a", "b"}, Default: "a", Description: "the mode", Required: true},
				{Name: "every", Type: OptionDuration},
			}},
			want: &InfoResponse{Name: "x", Options: []OptionSpec{
				{Name: "mode", Type: OptionEnum, Values: []string{"a", "b"}, Default: "a", Description: "the mode", Required: true},
				{Name: "every", Type: OptionDuration},
			}},
		},
		{
			name: "negative version becomes 0",
			in:   &InfoResponse{Name: "x", ProtocolVersion: -1},
			want: &InfoResponse{Name: "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := infoFromProto(infoToProto(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip: got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestCheckInfo(t *testing.T) {
	tests := []struct {
		name        string
		info        *InfoResponse
		wantErr     bool
		wantVersion bool // errors.Is(err, ErrIncompatibleVersion)
	}{
		{name: "good", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion}},
		{name: "nil", info: nil, wantErr: true},
		{name: "no name", info: &InfoResponse{ProtocolVersion: ProtocolVersion}, wantErr: true},
		{name: "old version", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion - 1}, wantErr: true, wantVersion: true},
		{name: "new version", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion + 1}, wantErr: true, wantVersion: true},
		{name: "good options", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion, Options: []OptionSpec{{Name: "n", Type: OptionInt, Default: "3"}}}},
		{name: "nameless option", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion, Options: []OptionSpec{{Type: OptionInt}}}, wantErr: true},
		{name: "option twice", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion, Options: []OptionSpec{{Name: "n"}, {Name: "n"}}}, wantErr: true},
		{name: "enum without values", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion, Options: []OptionSpec{{Name: "n", Type: OptionEnum}}}, wantErr: true},
		{name: "unknown option type", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion, Options: []OptionSpec{{Name: "n", Type: OptionType(9)}}}, wantErr: true},
		{name: "default of another type", info: &InfoResponse{Name: "file", ProtocolVersion: ProtocolVersion, Options: []OptionSpec{{Name: "n", Type: OptionInt, Default: "three"}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckInfo(tt.info)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckInfo() = %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrIncompatibleVersion); got != tt.wantVersion {
				t.Errorf("errors.Is(%v, ErrIncompatibleVersion) = %v, want %v", err, got, tt.wantVersion)
			}
		})
	}
}
