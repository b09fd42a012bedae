package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeBundle(t *testing.T, pem []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trust-bundle.pem")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs weft-proxy in process with args and returns its result
// channel and a function that stops it.
func start(t *testing.T, args ...string) (<-chan error, context.CancelFunc) {
	t.Helper()
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	return done, cancel
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(proxytest.Wait):
		t.Fatal("weft-proxy did not return")
		return nil
	}
}

func adminGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{}, Timeout: proxytest.Wait}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunJoinsAppliesAndServesAdmin(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{})
	t.Setenv(tokenEnv, f.Token)
	admin := freeAddr(t)
	done, stop := start(t, "--instance", "web-1", "--controller", f.Addr, "--trust-bundle", writeBundle(t, ca.RootPEM), "--admin", admin, "--data-dir", t.TempDir())

	if r := f.NextRequest(t); r.InstanceId != "web-1" {
		t.Fatalf("subscribed as %q, want web-1", r.InstanceId)
	}
	if code, body := adminGet(t, admin, "/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "configuration") {
		t.Errorf("/ready before any config: %d %q, want 503 waiting for a configuration", code, body)
	}
	if os.Getenv(tokenEnv) != "" {
		t.Errorf("%s is still set in the sidecar's environment", tokenEnv)
	}
	cfg := &meshapi.ProxyConfig{
		InstanceId: "web-1", Service: "web", TrustDomain: "weft.test",
		Labels: map[string]string{"nomad_job": "shop", "alloc-id": "a1", "pid": "4242", "proxy_pid": "4243", "restarts": "1"},
		Upstreams: []*meshapi.Upstream{{
			Name: "api", Service: "api", SpiffeId: "spiffe://weft.test/ns/default/svc/api", BindAddress: "127.0.0.1",
		}},
	}
	f.Send(t, &meshapi.ConfigUpdate{Version: 7, Config: cfg})
	if r := f.NextRequest(t); r.AppliedVersion != 7 {
		t.Fatalf("after version 7: %v, want an ACK", r)
	}
	if code, body := adminGet(t, admin, "/ready"); code != http.StatusOK {
		t.Errorf("/ready after the config: %d %q", code, body)
	}
	_, body := adminGet(t, admin, "/config")
	var u meshapi.ConfigUpdate
	if err := protojson.Unmarshal([]byte(body), &u); err != nil || u.Version != 7 || u.Config.GetInstanceId() != "web-1" {
		t.Errorf("/config: %v, version %d; body:\n%s", err, u.Version, body)
	}
	_, body = adminGet(t, admin, "/metrics")
	if !strings.Contains(body, "weft_config_version 7") {
		t.Errorf("/metrics lacks weft_config_version 7:\n%s", body)
	}
	var info string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "weft_instance_info{") {
			info = line
		}
	}
	for _, want := range []string{`nomad_job="shop"`, `alloc_id="a1"`, `instance_id="web-1"`, `service="web"`} {
		if !strings.Contains(info, want) {
			t.Errorf("weft_instance_info %q lacks %s", info, want)
		}
	}
	// Labels that change on every restart would make a new series each
	// time: they are left out.
	for _, unwanted := range []string{`pid=`, `restarts=`} {
		if strings.Contains(info, unwanted) {
			t.Errorf("weft_instance_info %q has %s, which changes on every restart", info, unwanted)
		}
	}
	// The standard process and Go collectors, to watch the sidecar's memory.
	for _, want := range []string{"process_resident_memory_bytes ", "go_memstats_heap_alloc_bytes ", "go_goroutines "} {
		if !strings.Contains(body, "\n"+want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stop()
	if err := result(t, done); err != nil {
		t.Errorf("weft-proxy after a stop: %v", err)
	}
}

func TestRunFailsClearly(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		used   bool
		bundle []byte
		want   []string
	}{
		{"join token already used", true, ca.RootPEM, []string{"refused the join token", "fresh WEFT_JOIN_TOKEN"}},
		{"trust bundle without certificates", false, []byte("not pem"), []string{"trust bundle", "no PEM certificate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := proxytest.StartController(t, ca, proxytest.ControllerOptions{TokenUsed: tc.used})
			t.Setenv(tokenEnv, f.Token)
			done, stop := start(t, "--instance", "web-1", "--controller", f.Addr, "--trust-bundle", writeBundle(t, tc.bundle), "--admin", freeAddr(t))
			defer stop()
			err := result(t, done)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestJoinWithSchedulerCredential(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{CredentialAdapter: "nomad", Credential: "jwt-from-nomad"})
	t.Setenv("NOMAD_TOKEN", "jwt-from-nomad")
	done, stop := start(t, "--instance", "web-1", "--controller", f.Addr, "--trust-bundle", writeBundle(t, ca.RootPEM),
		"--admin", freeAddr(t), "--credential-adapter", "nomad", "--credential-env", "NOMAD_TOKEN")
	if r := f.NextRequest(t); r.InstanceId != "web-1" {
		t.Fatalf("subscribed as %q after joining with a credential, want web-1", r.InstanceId)
	}
	stop()
	if err := result(t, done); err != nil {
		t.Errorf("weft-proxy after a stop: %v", err)
	}

	// A credential file with the wrong credential is refused, clearly.
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("someone else's token\n"), 0o600)
	done, stop = start(t, "--instance", "web-1", "--controller", f.Addr, "--trust-bundle", writeBundle(t, ca.RootPEM),
		"--admin", freeAddr(t), "--credential-adapter", "nomad", "--credential-file", file)
	defer stop()
	if err := result(t, done); err == nil || !strings.Contains(err.Error(), "refused the nomad credential") {
		t.Errorf("wrong credential: %v, want a refusal naming the nomad credential", err)
	}
}

func TestCredentialFlags(t *testing.T) {
	t.Setenv("EMPTY_TOKEN", "")
	cases := []struct {
		name string
		o    options
		want string
	}{
		{"env without adapter", options{credEnv: "X"}, "need --credential-adapter"},
		{"adapter without source", options{credAdapter: "nomad"}, "needs --credential-env or --credential-file"},
		{"both sources", options{credAdapter: "nomad", credEnv: "X", credFile: "f"}, "not both"},
		{"empty env", options{credAdapter: "nomad", credEnv: "EMPTY_TOKEN"}, "empty or unset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := credentialSource(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"version"}, []string{"weft-proxy "}},
		{[]string{"--help"}, []string{"--instance", "--controller", "--trust-bundle", "--admin", "--data-dir", "WEFT_JOIN_TOKEN"}},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			cmd := newRootCmd()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestMissingFlags(t *testing.T) {
	cmd := newRootCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(nil)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "instance") || !strings.Contains(err.Error(), "admin") {
		t.Errorf("no flags: %v, want the required flags named", err)
	}
}

// The controller replicas come from --controller (repeated or a comma
// list) or, without it, from $WEFT_CONTROLLERS; none at all, or a bad
// address, is an error that says where to put them.
func TestControllerList(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	bundle := writeBundle(t, ca.RootPEM)
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string
	}{
		{"none", "", nil, "no controller address; pass --controller host:port"},
		{"bad in the list", "", []string{"--controller", "127.0.117.1:7400,127.0.117.2"}, `controller address "127.0.117.2": want host:port`},
		{"bad in the environment", "127.0.117.1", nil, "--controller (or $WEFT_CONTROLLERS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(controllersEnv, tc.env)
			cmd := newRootCmd()
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			cmd.SetArgs(append([]string{"--instance", "web-1", "--trust-bundle", bundle, "--admin", freeAddr(t)}, tc.args...))
			if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	// From the environment, a list of two: the sidecar subscribes to the
	// live one (the other address refuses connections).
	f := proxytest.StartController(t, ca, proxytest.ControllerOptions{})
	t.Setenv(tokenEnv, f.Token)
	t.Setenv(controllersEnv, freeAddr(t)+", "+f.Addr)
	done, stop := start(t, "--instance", "web-1", "--trust-bundle", bundle, "--admin", freeAddr(t))
	if r := f.NextRequest(t); r.InstanceId != "web-1" {
		t.Fatalf("subscribed as %q, want web-1", r.InstanceId)
	}
	stop()
	if err := result(t, done); err != nil {
		t.Fatalf("weft-proxy returned %v after it was stopped, want nil", err)
	}
}
