package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
)

// joinTokensFromAdmin: a launcher that is not an adapter asks the admin API
// for a join token, and the controller admits a sidecar with it, once.
func joinTokensFromAdmin(t *testing.T, ctl *harness.Controller, instance, service string) {
	req := map[string]any{"adapter": "local", "instance": instance, "service": service, "ttl_seconds": 60}
	wrong, err := ctl.Client("wrong")
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	err = wrong.Call(context.Background(), "POST", "/v1/join-tokens", req, &out)
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized || out.Token != "" {
		t.Errorf("join token with a wrong admin token: %v, %+v; want 401 and no token", err, out)
	}
	if err := ctl.Call("POST", "/v1/join-tokens", req, &out); err != nil || !strings.HasPrefix(out.Token, "wj1.") {
		t.Fatalf("join token answer: %v %+v", err, out)
	}

	mc := meshClient(t, ctl)
	join := func() (*meshapi.Credentials, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return mc.Join(ctx, &meshapi.JoinRequest{InstanceId: instance, JoinToken: out.Token, CsrDer: newCSR(t)})
	}
	creds, err := join()
	if err != nil {
		t.Fatalf("joining with the admin API's token: %v", err)
	}
	if creds.SpiffeId != id(service) {
		t.Errorf("issued identity %s, want %s", creds.SpiffeId, id(service))
	}
	if _, err := join(); err == nil {
		t.Error("the admin API's token admitted a second sidecar")
	}
}

// adminIsHTTPSOnly: the admin API speaks TLS only and answers a plaintext
// request with nothing of its data; the CLI finds the controller through
// WEFT_ADDR, WEFT_TOKEN and WEFT_CACERT alone, refuses http://, and says
// what to do when the CA bundle is another mesh's.
func adminIsHTTPSOnly(t *testing.T, ctl *harness.Controller) {
	tok, err := api.ReadToken(ctl.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a plaintext request gets none of the API's data", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", ctl.Admin, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "GET /v1/status HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer "+tok+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(io.LimitReader(conn, 1<<20)) // the server closes the connection
		for _, leak := range []string{tok, "trust_domain", "instances", "BEGIN CERTIFICATE"} {
			if strings.Contains(string(answer), leak) {
				t.Errorf("a plaintext request got %q back:\n%s", leak, answer)
			}
		}
		if resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(answer))), nil); err == nil && resp.StatusCode == http.StatusOK {
			t.Errorf("a plaintext request got 200 OK:\n%s", answer)
		}
	})

	other, err := ca.LoadOrCreate(filepath.Join(t.TempDir(), "other-mesh"))
	if err != nil {
		t.Fatal(err)
	}
	otherBundle := filepath.Join(t.TempDir(), "other-mesh.pem")
	os.WriteFile(otherBundle, other.RootsPEM(), 0o644)
	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		want    []string // in the output on success
		wantErr []string // in the output of a failure
	}{
		{name: "status with WEFT_ADDR, WEFT_TOKEN and WEFT_CACERT alone",
			env:  []string{"WEFT_ADDR=" + ctl.URL(), "WEFT_TOKEN=" + tok, "WEFT_CACERT=" + ctl.CACert()},
			want: []string{"INSTANCE", "secret-0", "spiffe://"}},
		{name: "ca roots --pem with the environment prints the bundle",
			env:  []string{"WEFT_ADDR=" + ctl.URL(), "WEFT_TOKEN=" + tok, "WEFT_CACERT=" + ctl.CACert()},
			args: []string{"ca", "roots", "--pem"}, want: []string{"-----BEGIN CERTIFICATE-----"}},
		{name: "another mesh's CA bundle",
			env:     []string{"WEFT_ADDR=" + ctl.URL(), "WEFT_TOKEN=" + tok, "WEFT_CACERT=" + otherBundle},
			wantErr: []string{"does not verify", "set WEFT_CACERT or --ca-cert", "weft ca roots --pem"}},
		{name: "a wrong token",
			env:     []string{"WEFT_ADDR=" + ctl.URL(), "WEFT_TOKEN=wrong", "WEFT_CACERT=" + ctl.CACert()},
			wantErr: []string{"401 Unauthorized"}},
		{name: "a plain http:// address",
			env:     []string{"WEFT_ADDR=http://" + ctl.Admin, "WEFT_TOKEN=" + tok, "WEFT_CACERT=" + ctl.CACert()},
			wantErr: []string{"plain http://", "use https://" + ctl.Admin}},
		{name: "--admin wins over WEFT_ADDR",
			env:  []string{"WEFT_ADDR=http://" + ctl.Admin, "WEFT_TOKEN=" + tok, "WEFT_CACERT=" + ctl.CACert()},
			args: []string{"status", "--admin", ctl.URL()}, want: []string{"INSTANCE", "secret-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = []string{"status"}
			}
			cmd := exec.Command(filepath.Join(binDir, "weft"), args...)
			// A directory without .weft, and no WEFT_ variable but these.
			cmd.Dir = t.TempDir()
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "WEFT_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, tc.env...)
			b, err := cmd.CombinedOutput()
			out := string(b)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("weft %s succeeded, want an error:\n%s", strings.Join(args, " "), out)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, tok) {
				t.Errorf("the error repeats the token:\n%s", out)
			}
		})
	}
}
