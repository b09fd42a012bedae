package nomad

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// nodeProxyJob is a system job marked as a node proxy (meta weft_proxy =
// "node", at the job's or the group's level) whose task writes its
// workload identity to tokenFile.
func nodeProxyJob(ns, name, tokenFile string, groupMeta bool) string {
	jobMeta, grpMeta := `meta { weft_proxy = "node" }`, ""
	if groupMeta {
		jobMeta, grpMeta = "", `meta { weft_proxy = "node" }`
	}
	return fmt.Sprintf(`job %[2]q {
  namespace = %[1]q
  type      = "system"
  %[4]s
  group "proxy" {
    %[5]s
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
`, ns, name, tokenFile, jobMeta, grpMeta)
}

// nodeModeJob runs count instances of service name that chose node mode
// (the tag weft_proxy_mode=node) and have no sidecar task.
func nodeModeJob(ns, name string, count int) string {
	return fmt.Sprintf(`job %[2]q {
  namespace = %[1]q
  group "g" {
    count = %[3]d
    network {
      port "app" {}
      port "mesh" {}
    }
    service {
      name     = %[2]q
      provider = "nomad"
      port     = "app"
      tags     = ["weft_proxy_mode=node"]
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
      kill_timeout = "1s"
    }
  }
}
`, ns, name, count)
}

// readJWT waits (bounded) for a task to write its identity to file.
func readJWT(t *testing.T, file string) string {
	t.Helper()
	var jwt string
	err := nomadtest.Poll(context.Background(), 30*time.Second, 50*time.Millisecond, func() error {
		b, err := os.ReadFile(file)
		jwt = string(b)
		if err == nil && jwt == "" {
			return fmt.Errorf("%s is empty", file)
		}
		return err
	})
	if err != nil {
		t.Fatalf("no workload identity in %s: %v", file, err)
	}
	return jwt
}

// A node proxy's identity (a system job marked weft_proxy = "node") proves
// its node, and lets it serve the instances of its node that chose node
// mode, with their own service. Everything else is refused, with the real
// Nomad 1.6.1 agent checking the JWTs: a job not marked as a node proxy
// (an ordinary sidecar) cannot claim node mode, an instance that did not
// choose node mode is refused, an altered or forged JWT is refused, and a
// stopped node proxy's identity proves nothing. (One client node here: an
// instance on another node is refused by TestSchedulerNodeProxyGetsOnly
// ItsOwnNodesInstances in core/meshserver and by the NodeID comparison
// below, which the agent's one node always passes.)
func TestVerifyNodeProxyIdentity(t *testing.T) {
	agent := sharedAgent(t)
	ns := "nodeproxy"
	agent.CreateNamespace(t, ns)
	dir := t.TempDir()
	agent.Run(t, nodeProxyJob(ns, "weft-node", filepath.Join(dir, "node.jwt"), false))
	proxyAllocs := agent.Running(t, ns, "weft-node", 1, time.Minute)
	nodeJWT := readJWT(t, filepath.Join(dir, "node.jwt"))
	agent.Run(t, nodeProxyJob(ns, "weft-node-grp", filepath.Join(dir, "grp.jwt"), true))
	agent.Running(t, ns, "weft-node-grp", 1, time.Minute)
	grpJWT := readJWT(t, filepath.Join(dir, "grp.jwt"))
	sideAlloc, sideJWT := runIdentityJob(t, agent, ns, "plain")
	agent.Run(t, nodeModeJob(ns, "nm", 2))
	nm := agent.Running(t, ns, "nm", 2, time.Minute)
	nodeID := proxyAllocs[0].NodeID

	a := fastAdapter()
	resp, err := a.Configure(context.Background(), &sdk.ConfigureRequest{
		Source: agent.Addr, Options: map[string]string{OptionTokenFile: agent.TokenFile(t)},
	})
	if err != nil || sdk.HasErrors(resp.Diagnostics) {
		t.Fatalf("Configure: %v %+v", err, resp)
	}

	sig := strings.LastIndex(nodeJWT, ".") + 1
	tests := []struct {
		name, instance, credential string
		wantService                string // "" with wantErr
		wantErr                    string
	}{
		{"the node proxy asks who it is", "", nodeJWT, "", ""},
		{"the node proxy (group meta) asks who it is", "", grpJWT, "", ""},
		{"the node proxy for a node-mode instance", nm[0].ID + "/nm", nodeJWT, "nm", ""},
		{"the node proxy for the other node-mode instance", nm[1].ID + "/nm", nodeJWT, "nm", ""},
		{"the node proxy (group meta) for a node-mode instance", nm[0].ID + "/nm", grpJWT, "nm", ""},
		{"the node proxy for an instance that did not choose node mode", sideAlloc + "/plain", nodeJWT, "", "did not choose node mode"},
		{"the node proxy for a service the allocation does not register", nm[0].ID + "/plain", nodeJWT, "", "registers no service plain"},
		{"the node proxy for an allocation that does not exist", "00000000-0000-0000-0000-000000000000/nm", nodeJWT, "", "reading allocation"},
		{"an ordinary sidecar claims node mode", nm[0].ID + "/nm", sideJWT, "", "is not a node proxy"},
		{"an ordinary sidecar asks for a node's instances", "", sideJWT, "", "is not a node proxy"},
		{"the sidecar's token altered to the node proxy's job", nm[0].ID + "/nm",
			withClaims(t, sideJWT, func(c map[string]any) {
				c["nomad_allocation_id"] = proxyAllocs[0].ID
				c["nomad_job_id"] = "weft-node"
			}), "", "Nomad refused the workload identity"},
		{"the node proxy's token with its task changed", nm[0].ID + "/nm",
			withClaims(t, nodeJWT, func(c map[string]any) { c["nomad_task"] = "other" }), "", "Nomad refused the workload identity"},
		{"a forged signature", nm[0].ID + "/nm", nodeJWT[:sig] + "AAAA" + nodeJWT[sig+4:], "", "Nomad refused the workload identity"},
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
			if got.Node != nodeID || got.Service != tt.wantService || got.InstanceID != tt.instance {
				t.Errorf("VerifyIdentity = %+v, want node %s, service %q, instance %q", got, nodeID, tt.wantService, tt.instance)
			}
			if tt.instance != "" && got.Namespace != ns {
				t.Errorf("namespace %q, want %q", got.Namespace, ns)
			}
		})
	}

	t.Run("a stopped node proxy's identity proves nothing", func(t *testing.T) {
		agent.Stop(t, ns, "weft-node")
		start := time.Now()
		err := nomadtest.Poll(context.Background(), 30*time.Second, 100*time.Millisecond, func() error {
			for _, inst := range []string{"", nm[0].ID + "/nm"} {
				if _, err := a.VerifyIdentity(context.Background(), &sdk.VerifyIdentityRequest{InstanceID: inst, Credential: nodeJWT}); err == nil {
					return fmt.Errorf("still accepted for %q", inst)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("the node proxy's identity after its job stopped: %v", err)
		}
		t.Logf("refused %v after the stop", time.Since(start).Round(time.Millisecond))
	})
}
