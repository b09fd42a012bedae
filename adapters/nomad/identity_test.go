package nomad

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// identityJob runs a task with a workload identity in its environment,
// which it writes to tokenFile, in a meshed group.
func identityJob(ns, name, tokenFile string) string {
	return fmt.Sprintf(`job %[2]q {
  namespace = %[1]q
  group "g" {
    network {
      port "app" {}
      port "mesh" {}
    }
    service {
      name     = %[2]q
      provider = "nomad"
      port     = "app"
    }
    task "weft-proxy" {
      driver = "raw_exec"
      identity {
        env = true
      }
      config {
        command = "/bin/sh"
        args    = ["-c", "printf %%s \"$NOMAD_TOKEN\" > %[3]s.tmp && mv %[3]s.tmp %[3]s && exec sleep 3600"]
      }
      kill_timeout = "1s"
    }
  }
}
`, ns, name, tokenFile)
}

// runIdentityJob runs identityJob and returns its allocation's ID and the
// task's workload identity.
func runIdentityJob(t *testing.T, agent *nomadtest.Agent, ns, name string) (allocID, jwt string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), name+".jwt")
	agent.Run(t, identityJob(ns, name, file))
	allocs := agent.Running(t, ns, name, 1, time.Minute)
	err := nomadtest.Poll(context.Background(), 30*time.Second, 50*time.Millisecond, func() error {
		b, err := os.ReadFile(file)
		jwt = string(b)
		return err
	})
	if err != nil || jwt == "" {
		t.Fatalf("the task of job %s wrote no workload identity: %v", name, err)
	}
	return allocs[0].ID, jwt
}

// withClaims returns token with its claims changed by edit and its
// signature kept: what a forger who read another task's token can make.
func withClaims(t *testing.T, token string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	body, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(body)
	return strings.Join(parts, ".")
}

func TestVerifyIdentity(t *testing.T) {
	agent := sharedAgent(t)
	ns := "ident"
	agent.CreateNamespace(t, ns)
	allocA, jwtA := runIdentityJob(t, agent, ns, "job-a")
	allocB, jwtB := runIdentityJob(t, agent, ns, "job-b")

	a := fastAdapter()
	resp, err := a.Configure(context.Background(), &sdk.ConfigureRequest{
		Source: agent.Addr, Options: map[string]string{OptionTokenFile: agent.TokenFile(t)},
	})
	if err != nil || sdk.HasErrors(resp.Diagnostics) {
		t.Fatalf("Configure: %v %+v", err, resp)
	}

	tests := []struct {
		name, instance, credential string
		wantService                string // "" when refused
		wantErr                    string
	}{
		{"job A's identity proves job A's service", allocA + "/job-a", jwtA, "job-a", ""},
		{"job B's identity proves job B's service", allocB + "/job-b", jwtB, "job-b", ""},
		{"job A's identity for job B's instance", allocB + "/job-b", jwtA, "", "is for allocation " + allocA},
		{"job A's identity for a service job A does not register", allocA + "/job-b", jwtA, "", "registers no service job-b"},
		{"job A's token with its claims changed to job B", allocB + "/job-b",
			withClaims(t, jwtA, func(c map[string]any) { c["nomad_allocation_id"] = allocB; c["nomad_job_id"] = "job-b" }), "", "Nomad refused the workload identity"},
		{"job A's token with its task changed", allocA + "/job-a",
			withClaims(t, jwtA, func(c map[string]any) { c["nomad_task"] = "other" }), "", "Nomad refused the workload identity"},
		{"a forged signature", allocA + "/job-a", jwtA[:strings.LastIndex(jwtA, ".")+1] + "AAAA" + jwtA[strings.LastIndex(jwtA, ".")+5:], "", "Nomad refused the workload identity"},
		{"an ACL token instead of an identity", allocA + "/job-a", agent.Token, "", "not a JWT"},
		{"an instance ID of another shape", "job-a-0", jwtA, "", "not a Nomad instance ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{InstanceID: tt.instance, Credential: tt.credential})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("VerifyIdentity = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyIdentity: %v", err)
			}
			if got.Service != tt.wantService || got.Namespace != ns || got.InstanceID != tt.instance {
				t.Errorf("VerifyIdentity = %+v, want service %s in namespace %s for %s", got, tt.wantService, ns, tt.instance)
			}
		})
	}

	t.Run("a stopped allocation's identity proves nothing", func(t *testing.T) {
		agent.Stop(t, ns, "job-a")
		err := nomadtest.Poll(context.Background(), 30*time.Second, 100*time.Millisecond, func() error {
			_, err := a.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{InstanceID: allocA + "/job-a", Credential: jwtA})
			if err == nil {
				return fmt.Errorf("still accepted")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("job A's identity after job A stopped: %v", err)
		}
	})
}

// A Nomad without ACLs takes any token, so it proves nothing: the adapter
// refuses every identity, naming the reason.
func TestVerifyIdentityNeedsACLs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real Nomad agent; skipped with -short")
	}
	agent, err := nomadtest.LaunchWith(nomadtest.Options{NoACL: true})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	allocID, jwt := runIdentityJob(t, agent, "default", "open")
	a := fastAdapter()
	t.Setenv("NOMAD_TOKEN", "")
	resp, err := a.Configure(context.Background(), &sdk.ConfigureRequest{Source: agent.Addr})
	if err != nil || sdk.HasErrors(resp.Diagnostics) {
		t.Fatalf("Configure against a Nomad without ACLs: %v %+v", err, resp)
	}
	for name, cred := range map[string]string{"its own identity": jwt, "a forged one": withClaims(t, jwt, func(c map[string]any) { c["nomad_task"] = "x" })} {
		_, err := a.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{InstanceID: allocID + "/open", Credential: cred})
		if err == nil || !strings.Contains(err.Error(), "does not enforce ACLs") {
			t.Errorf("%s against a Nomad without ACLs: %v, want a refusal that names the missing ACLs", name, err)
		}
	}
}
