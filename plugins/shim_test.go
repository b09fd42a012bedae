package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/plugintest"
)

// helperEnv makes the test binary serve a fake adapter under the protocol
// version it names instead of running tests (see TestMain).
const helperEnv = "WEFT_PLUGINS_TEST_HELPER_VERSION"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		version, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bad %s=%q\n", helperEnv, v)
			os.Exit(2)
		}
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: plugins.Handshake,
			VersionedPlugins: map[int]plugin.PluginSet{
				version: {plugins.PluginName: &plugins.GRPCAdapterPlugin{Impl: &fake{}}},
			},
			GRPCServer: plugin.DefaultGRPCServer,
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const wait = 10 * time.Second

// fake is an Adapter whose behaviour each test sets.
type fake struct {
	info      *plugins.InfoResponse
	infoErr   error
	configure func(*plugins.ConfigureRequest) (*plugins.ConfigureResponse, error)
	watch     func(ctx context.Context, events chan<- plugins.WatchEvent) error
}

func (f *fake) Info(context.Context) (*plugins.InfoResponse, error) {
	if f.infoErr != nil {
		return nil, f.infoErr
	}
	if f.info != nil {
		return f.info, nil
	}
	return &plugins.InfoResponse{Name: "fake", ProtocolVersion: plugins.ProtocolVersion}, nil
}

func (f *fake) Configure(_ context.Context, req *plugins.ConfigureRequest) (*plugins.ConfigureResponse, error) {
	if f.configure != nil {
		return f.configure(req)
	}
	return &plugins.ConfigureResponse{}, nil
}

func (f *fake) Watch(ctx context.Context, _ *plugins.WatchRequest, events chan<- plugins.WatchEvent) error {
	if f.watch != nil {
		return f.watch(ctx, events)
	}
	<-ctx.Done()
	return nil
}

func instance(id string) model.Instance {
	return model.Instance{
		ID: id, Service: "web", Address: "127.0.0.1",
		Ports:  map[string]int{model.PortApp: 8080, model.PortMesh: 20000},
		Meta:   map[string]string{"version": "v1"},
		Health: model.HealthPassing,
	}
}

func TestShimsRoundTrip(t *testing.T) {
	info := &plugins.InfoResponse{Name: "fake", Version: "1.2.3", ProtocolVersion: plugins.ProtocolVersion, Capabilities: []string{plugins.CapJoinTokens}}
	req := &plugins.ConfigureRequest{
		Source:  "/tmp/x.json",
		Options: map[string]string{"k": "v"},
		Mesh:    plugins.MeshContext{TrustDomain: "weft.local", JoinKey: []byte("0123456789abcdef")},
	}
	resp := &plugins.ConfigureResponse{Diagnostics: []plugins.Diagnostic{{Severity: plugins.SeverityWarning, Summary: "careful", Detail: "really"}}}
	sent := []plugins.WatchEvent{
		{Snapshot: model.Snapshot{Instances: []model.Instance{instance("a")}}},
		{
			Snapshot:    model.Snapshot{Instances: []model.Instance{instance("a"), instance("b")}},
			Diagnostics: []plugins.Diagnostic{{Severity: plugins.SeverityWarning, Summary: "record 3 skipped"}},
		},
		{}, // an empty snapshot is a valid snapshot: every instance is gone
	}

	gotReq := make(chan *plugins.ConfigureRequest, 1)
	a := plugintest.GRPC(t, &fake{
		info: info,
		configure: func(r *plugins.ConfigureRequest) (*plugins.ConfigureResponse, error) {
			gotReq <- r
			return resp, nil
		},
		watch: func(ctx context.Context, events chan<- plugins.WatchEvent) error {
			for _, ev := range sent {
				select {
				case events <- ev:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	gotInfo, err := a.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if !reflect.DeepEqual(gotInfo, info) {
		t.Errorf("Info = %#v, want %#v", gotInfo, info)
	}

	gotResp, err := a.Configure(ctx, req)
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if !reflect.DeepEqual(gotResp, resp) {
		t.Errorf("Configure = %#v, want %#v", gotResp, resp)
	}
	if r := <-gotReq; !reflect.DeepEqual(r, req) {
		t.Errorf("adapter got request %#v, want %#v", r, req)
	}

	events := make(chan plugins.WatchEvent, len(sent))
	if err := a.Watch(ctx, &plugins.WatchRequest{}, events); err != nil {
		t.Fatalf("Watch returned %v after the adapter ended its watch cleanly, want nil", err)
	}
	close(events)
	var got []plugins.WatchEvent
	for ev := range events {
		// The client numbers snapshots and hints at deltas (delta.go);
		// the adapter sent neither.
		if ev.Snapshot.Seq == 0 {
			t.Errorf("event %d: snapshot not numbered", len(got))
		}
		ev.Snapshot.Seq, ev.Snapshot.Delta = 0, nil
		got = append(got, ev)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("events:\n got %#v\nwant %#v", got, sent)
	}
}

func TestShimErrors(t *testing.T) {
	tests := []struct {
		name string
		impl *fake
		call func(ctx context.Context, a plugins.Adapter) error
		want string // in the error
	}{
		{
			name: "info error is a Go error",
			impl: &fake{infoErr: errors.New("no info today")},
			call: func(ctx context.Context, a plugins.Adapter) error {
				_, err := a.Info(ctx)
				return err
			},
			want: "no info today",
		},
		{
			name: "configure error comes back as an error diagnostic",
			impl: &fake{configure: func(*plugins.ConfigureRequest) (*plugins.ConfigureResponse, error) {
				return nil, errors.New("source missing")
			}},
			call: func(ctx context.Context, a plugins.Adapter) error {
				r, err := a.Configure(ctx, &plugins.ConfigureRequest{})
				if err != nil {
					return fmt.Errorf("transport error, want a diagnostic: %w", err)
				}
				if len(r.Diagnostics) != 1 || r.Diagnostics[0].Severity != plugins.SeverityError {
					return fmt.Errorf("diagnostics = %#v, want one error", r.Diagnostics)
				}
				return errors.New(r.Diagnostics[0].Detail)
			},
			want: "source missing",
		},
		{
			name: "watch error is a Go error with the adapter's message",
			impl: &fake{watch: func(context.Context, chan<- plugins.WatchEvent) error {
				return errors.New("scheduler unreachable")
			}},
			call: func(ctx context.Context, a plugins.Adapter) error {
				return a.Watch(ctx, &plugins.WatchRequest{}, make(chan plugins.WatchEvent))
			},
			want: "scheduler unreachable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := plugintest.GRPC(t, tt.impl)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := tt.call(ctx, a)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestWatchCancel cancels a watch whose consumer stopped reading while the
// adapter keeps sending: both sides must return.
func TestWatchCancel(t *testing.T) {
	adapterDone := make(chan error, 1)
	a := plugintest.GRPC(t, &fake{watch: func(ctx context.Context, events chan<- plugins.WatchEvent) error {
		defer func() { adapterDone <- ctx.Err() }()
		for {
			select {
			case events <- plugins.WatchEvent{Snapshot: model.Snapshot{Instances: []model.Instance{instance("a")}}}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan plugins.WatchEvent) // read once, then never again
	watchDone := make(chan error, 1)
	go func() { watchDone <- a.Watch(ctx, &plugins.WatchRequest{}, events) }()

	select {
	case <-events:
	case <-time.After(wait):
		t.Fatal("no event within", wait)
	}
	cancel()
	select {
	case err := <-watchDone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("client Watch did not return within", wait, "of cancel")
	}
	select {
	case err := <-adapterDone:
		if err == nil {
			t.Error("adapter Watch returned but its ctx was not cancelled")
		}
	case <-time.After(wait):
		t.Fatal("adapter Watch did not return within", wait, "of the client's cancel")
	}
}

// TestVersionNegotiation launches this test binary as a real plugin that
// speaks a given protocol version.
func TestVersionNegotiation(t *testing.T) {
	tests := []struct {
		name    string
		version int
		wantErr bool
	}{
		{name: "same version", version: plugins.ProtocolVersion},
		{name: "newer plugin", version: plugins.ProtocolVersion + 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = []string{helperEnv + "=" + strconv.Itoa(tt.version)}
			logger := hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: os.Stderr})
			client := plugin.NewClient(plugins.ClientConfig(cmd, logger))
			t.Cleanup(client.Kill)

			a, err := plugins.Dispense(client)
			if tt.wantErr {
				if !errors.Is(err, plugins.ErrIncompatibleVersion) {
					t.Fatalf("Dispense = %v, want ErrIncompatibleVersion", err)
				}
				want := fmt.Sprintf("protocol %d", plugins.ProtocolVersion)
				if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "rebuild") {
					t.Errorf("error %q should name %q and say to rebuild", err, want)
				}
				if testing.Verbose() {
					t.Logf("version mismatch error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dispense: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			info, err := a.Info(ctx)
			if err != nil {
				t.Fatalf("Info over a real plugin process: %v", err)
			}
			if err := plugins.CheckInfo(info); err != nil {
				t.Errorf("CheckInfo: %v", err)
			}
		})
	}
}
