package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/test/harness"
)

// maxControllerRSS is what the controller may use while it refuses
// hostile files; it uses a few tens of MB at rest.
const maxControllerRSS = 200 << 20

// TestHostileFiles: deeply nested and huge policy and workloads files,
// written under a running mesh, are refused with diagnostics; the
// controller and the local adapter keep running on the last good files,
// within bounded memory, and traffic keeps flowing. A join token is
// single-use across a controller restart.
func TestHostileFiles(t *testing.T) {
	ctl, policyDir := startLocalMesh(t, clientWebPolicy, clientWebWorkloads(), "127.0.79.2")
	s := ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(2))
	client := s.Address("client")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	callWeb := func(t *testing.T) {
		t.Helper()
		code, body, err := harness.Get(ctx, "http://"+net.JoinHostPort(client, "9001")+"/")
		if err != nil || code != 200 || !strings.Contains(body, id("client")) {
			t.Fatalf("client -> web: %d %q %v", code, body, err)
		}
	}
	callWeb(t)
	controllerPid := ctl.Cmd.Process.Pid
	goodPolicy := s.Policy
	if len(s.Adapters) != 1 {
		t.Fatalf("adapters: %+v", s.Adapters)
	}
	adapterPid, adapterRestarts := s.Adapters[0].Pid, s.Adapters[0].Restarts

	t.Run("policy", func(t *testing.T) {
		for _, tc := range []struct {
			name, content, want string
		}{
			{"240 KB of [", "x = " + strings.Repeat("[", 240<<10) + "\n", "evil.hcl:1,"},
			{"240 KB of {a=", "\n\nx = " + strings.Repeat("{a=", 80<<10) + "\n", "evil.hcl:3,"},
			{"10 MB", strings.Repeat("service \"a\" {}\n", 10<<20/15), "Policy file too large"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				evil := filepath.Join(policyDir, "evil.hcl")
				if err := os.WriteFile(evil, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(evil)
				s := ctl.WaitFor(t, "the controller to refuse the policy", 30*time.Second, func(s *harness.Status) bool {
					return s.PolicyError != ""
				})
				t.Logf("policy_error: %s", s.PolicyError)
				if !pidAlive(controllerPid) {
					t.Fatal("the controller died")
				}
				rss := vmRSS(t, controllerPid)
				t.Logf("controller VmRSS after refusing %s: %.1f MB", tc.name, float64(rss)/(1<<20))
				if rss > maxControllerRSS {
					t.Errorf("controller VmRSS %d bytes, want under %d", rss, maxControllerRSS)
				}

				out, err := runWeft(t, "policy", "validate", policyDir)
				if err == nil {
					t.Fatalf("weft policy validate succeeded:\n%s", out)
				}
				for _, want := range []string{tc.want, "evil.hcl"} {
					if !strings.Contains(out, want) {
						t.Errorf("weft policy validate output lacks %q:\n%s", want, harness.Tail(out, 20))
					}
				}
				t.Logf("weft policy validate (%v):\n%s", err, harness.Tail(out, 12))
				if len(out) > 8<<10 {
					t.Errorf("weft policy validate printed %d bytes: a long line must be clipped", len(out))
				}

				// The last good policy is in force.
				if s, err := ctl.Status(); err != nil || s.Policy != goodPolicy {
					t.Errorf("policy in force %q (%v), want %q", s.Policy, err, goodPolicy)
				}
				callWeb(t)
				os.Remove(evil)
				ctl.WaitFor(t, "the good policy back", 30*time.Second, func(s *harness.Status) bool { return s.PolicyError == "" })
			})
		}
		if !strings.Contains(ctl.Out.String(), "Nesting too deep") {
			t.Error("the controller's log does not show the diagnostic")
		}
	})

	t.Run("workloads", func(t *testing.T) {
		wl := filepath.Join(filepath.Dir(policyDir), "workloads.hcl")
		good, err := os.ReadFile(wl)
		if err != nil {
			t.Fatal(err)
		}
		instances := instancePids(t, ctl.DataDir)
		for _, tc := range []struct{ name, content, want string }{
			{"240 KB of [", strings.Replace(string(good), "port    = 8080", "args = "+strings.Repeat("[", 240<<10)+"\n  port = 8080", 1), "Nesting too deep"},
			{"240 KB of {a=", strings.Replace(string(good), "port    = 8080", "meta = "+strings.Repeat("{a=", 80<<10)+"\n  port = 8080", 1), "Nesting too deep"},
			{"2 MiB", string(good) + strings.Repeat("#", 2<<20), "Workloads file too large"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				from := len(ctl.Out.String())
				if err := os.WriteFile(wl, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
				defer os.WriteFile(wl, good, 0o644)
				// The adapter sends its diagnostics with its snapshots; the
				// controller logs them.
				line := waitLog(t, ctl, from, "summary=\"Workloads file not applied\"", 30*time.Second)
				logged := ctl.Out.String()[from:]
				if !strings.Contains(logged, tc.want) || !strings.Contains(logged, "workloads.hcl") {
					t.Errorf("the controller's log does not show %q naming the file:\n%s", tc.want, harness.Tail(logged, 10))
				}
				t.Logf("logged: %.300s", line)
				s, err := ctl.Status()
				if err != nil {
					t.Fatal(err)
				}
				if a := s.Adapters[0]; a.Pid != adapterPid || a.Restarts != adapterRestarts || !a.Running {
					t.Errorf("adapter pid %d restarts %d running %v, want pid %d restarts %d running", a.Pid, a.Restarts, a.Running, adapterPid, adapterRestarts)
				}
				if len(s.Instances) != 2 {
					t.Errorf("instances %+v, want the 2 of the last good file", s.Instances)
				}
				callWeb(t)
			})
		}
		if got := instancePids(t, ctl.DataDir); fmt.Sprint(got) != fmt.Sprint(instances) {
			t.Errorf("instance processes changed: %v -> %v", instances, got)
		}
		rss := vmRSS(t, controllerPid)
		t.Logf("controller VmRSS after the workloads files: %.1f MB", float64(rss)/(1<<20))
	})

	t.Run("join token single-use across a restart", func(t *testing.T) {
		tok := mintJoinToken(t, ctl, "web-0", "web")
		joinWith := func(ctl *harness.Controller, csr []byte) (*meshapi.Credentials, error) {
			c := meshClient(t, ctl)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return c.Join(ctx, &meshapi.JoinRequest{InstanceId: "web-0", JoinToken: tok, CsrDer: csr})
		}
		if _, err := joinWith(ctl, []byte("garbage")); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("join with a garbage CSR: %v, want InvalidArgument", err)
		}
		creds, err := joinWith(ctl, newCSR(t))
		if err != nil {
			t.Fatalf("join after the failed one: %v (the failed join spent the token)", err)
		}
		if creds.SpiffeId != id("web") {
			t.Errorf("identity %s, want %s", creds.SpiffeId, id("web"))
		}
		if _, err := joinWith(ctl, newCSR(t)); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("second join: %v, want Unauthenticated", err)
		}

		before := ctl.Cmd.Process.Pid
		ctl = ctl.Restart()
		t.Logf("controller restarted: pid %d -> %d, same data directory %s", before, ctl.Cmd.Process.Pid, ctl.DataDir)
		ctl.WaitFor(t, "web-0 back after the restart", 90*time.Second, func(s *harness.Status) bool {
			for _, in := range s.Instances {
				if in.ID == "web-0" {
					return true
				}
			}
			return false
		})
		_, err = joinWith(ctl, newCSR(t))
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "already used") {
			t.Fatalf("join with the spent token after a restart: %v, want Unauthenticated, already used", err)
		}
		t.Logf("after the restart: %v", err)
		// A fresh token still works: the refusal is the token's, not the instance's.
		if _, err := meshClient(t, ctl).Join(ctx, &meshapi.JoinRequest{InstanceId: "web-0", JoinToken: mintJoinToken(t, ctl, "web-0", "web"), CsrDer: newCSR(t)}); err != nil {
			t.Fatalf("join with a fresh token after the restart: %v", err)
		}

		// A spent-token file the controller cannot read back stops it from
		// starting, rather than reviving the tokens it records.
		ctl.Stop()
		spentFile := filepath.Join(ctl.DataDir, "spent-join-tokens")
		if err := os.WriteFile(spentFile, []byte("not what the controller wrote\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runWeft(t, "controller", "--policy-dir", policyDir, "--data-dir", ctl.DataDir,
			"--listen", harness.FreeAddr(t), "--admin", harness.FreeAddr(t))
		if err == nil || !strings.Contains(out, spentFile) || !strings.Contains(out, "would let them be used again") {
			t.Fatalf("the controller on a corrupt spent-token file: %v\n%s", err, harness.Tail(out, 10))
		}
		t.Logf("the controller refuses to start: %s", harness.Tail(out, 2))
	})
}

// waitLog waits until the controller's output after from has a line with
// substr, and returns that line.
func waitLog(t *testing.T, ctl *harness.Controller, from int, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		out := ctl.Out.String()[from:]
		if i := strings.Index(out, substr); i >= 0 {
			start := strings.LastIndexByte(out[:i], '\n') + 1
			end := strings.IndexByte(out[i:], '\n')
			if end < 0 {
				end = len(out) - i
			}
			return out[start : i+end]
		}
		select {
		case <-ctl.Exited():
			t.Fatalf("the controller exited while waiting for %q in its log", substr)
		case <-deadline:
			t.Fatalf("no %q in the controller's log after %s:\n%s", substr, timeout, harness.Tail(out, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// mintJoinToken asks the controller's admin API for a join token.
func mintJoinToken(t *testing.T, ctl *harness.Controller, instance, service string) string {
	t.Helper()
	req := map[string]any{"adapter": "local", "instance": instance, "service": service, "ttl_seconds": 600}
	var out struct{ Token string }
	if err := ctl.Call("POST", "/v1/join-tokens", req, &out); err != nil {
		t.Fatalf("POST /v1/join-tokens: %v", err)
	}
	return out.Token
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("reading the controller's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parsing VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}
