package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/state"
)

// TestPolicyApplyCLI: against a single controller (a watched
// --policy-dir), apply sends nothing and says what to do; against a
// replica, it checks by default the index it planned against, says who
// applies, and plan prints the index to check.
func TestPolicyApplyCLI(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inForce api.PolicyInForce
		args    []string
		check   uint64 // the check_index the apply must send
		wantErr string
		wantOut string
	}{
		{name: "single controller", inForce: api.PolicyInForce{Source: "directory", Dir: "/etc/weft/policy", Watched: true},
			wantErr: "runs without raft: its policy is the watched --policy-dir /etc/weft/policy"},
		{name: "bootstrap", inForce: api.PolicyInForce{Source: "directory", Dir: "/etc/weft/policy"}, check: 0,
			wantOut: "the bootstrap policy: nothing applied yet, index 0"},
		{name: "replicated", inForce: api.PolicyInForce{Source: "replicated", Index: 7}, check: 7, wantOut: "replicated policy, index 7"},
		{name: "check-index given", inForce: api.PolicyInForce{Source: "replicated", Index: 7}, args: []string{"--check-index", "5"}, check: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *api.PolicyApplyRequest
			admin, dataDir, caFile := fakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v1/policy":
					in := tc.inForce
					json.NewEncoder(w).Encode(api.PolicySources{Files: map[string]string{"policy.hcl": planOld}, InForce: &in})
				case "/v1/policy/apply":
					got = &api.PolicyApplyRequest{}
					_ = json.NewDecoder(r.Body).Decode(got)
					json.NewEncoder(w).Encode(api.PolicyApplyResponse{Version: state.PolicyVersion{Index: 9, AppliedBy: got.AppliedBy, Digest: state.PolicyDigest(got.Files)}})
				default:
					http.Error(w, "no such path", http.StatusNotFound)
				}
			})
			newDir := writePolicy(t, planNew)
			out, err := runPolicy(t, append([]string{"apply", newDir, "--admin", admin, "--data-dir", dataDir, "--ca-cert", caFile}, tc.args...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || got != nil {
					t.Fatalf("got %v (sent %v), want %q and nothing sent", err, got, tc.wantErr)
				}
				return
			}
			if err != nil || got == nil {
				t.Fatalf("apply: %v\n%s", err, out)
			}
			if got.CheckIndex == nil || *got.CheckIndex != tc.check || got.AppliedBy == "" || string(got.Files["policy.hcl"]) != planNew {
				t.Fatalf("sent check_index %v, applied_by %q, files %v; want check_index %d", got.CheckIndex, got.AppliedBy, got.Files, tc.check)
			}
			if !strings.Contains(out, tc.wantOut) || !strings.Contains(out, "Applied: policy index 9") {
				t.Fatalf("output:\n%s", out)
			}
			// plan against a replica names the index to check.
			if !tc.inForce.Watched {
				out, err := runPolicy(t, "plan", newDir, "--admin", admin, "--data-dir", dataDir, "--ca-cert", caFile)
				if err != nil || !strings.Contains(out, "weft policy apply "+newDir+" --check-index ") {
					t.Fatalf("plan: %v\n%s", err, out)
				}
			}
		})
	}
}

// fakeAdmin is an admin API served by handle, with its token in dataDir
// and its certificate in caFile.
func fakeAdmin(t *testing.T, handle http.HandlerFunc) (admin, dataDir, caFile string) {
	t.Helper()
	dataDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "admin.token"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(dataDir, "test-server.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL, dataDir, caFile
}

func runPolicy(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newPolicyCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestReplicatedPolicySource: a replica's controller takes each applied
// version once, keeps its last good policy when one does not compile
// here (and says so), and reports where its policy comes from.
func TestReplicatedPolicySource(t *testing.T) {
	r := &replicatedPolicy{dir: "/etc/weft/policy", every: time.Hour, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		sources: map[string]string{"policy.hcl": planOld}, offers: make(chan state.PolicyVersion, 1)}
	if in := r.InForce(); in.Source != "directory" || in.Watched || !strings.Contains(in.Note, "bootstrap") {
		t.Fatalf("before any apply: %+v", in)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan *policy.Policy)
	go r.Run(ctx, out)
	version := func(index uint64, src string) state.PolicyVersion {
		files := map[string][]byte{"policy.hcl": []byte(src)}
		return state.PolicyVersion{Index: index, AppliedBy: "alice", Digest: state.PolicyDigest(files), Files: files}
	}
	next := func() *policy.Policy {
		select {
		case p := <-out:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("no policy within 10s")
			return nil
		}
	}
	r.offer(version(5, planNew))
	if p := next(); p == nil || len(p.Services) == 0 {
		t.Fatalf("applied version 5: %+v", p)
	}
	if in := r.InForce(); in.Source != "replicated" || in.Index != 5 || in.AppliedBy != "alice" {
		t.Fatalf("after version 5: %+v", in)
	}
	// The same version again (a replica catching up) is not sent again;
	// a version that does not compile here is refused, the last good
	// one stays, and the error says so; the next good one is taken.
	r.offer(version(5, planNew))
	r.offer(version(8, `service "x" { protocol = "htp" }`))
	r.offer(version(9, planOld))
	if p := next(); p == nil {
		t.Fatal("no policy for version 9")
	}
	if in := r.InForce(); in.Index != 9 || r.Sources()["policy.hcl"] != planOld {
		t.Fatalf("after version 9: %+v", in)
	}
	r.offer(version(12, `service "x" { protocol = "htp" }`))
	deadline := time.Now().Add(10 * time.Second)
	for r.Error() == "" {
		if time.Now().After(deadline) {
			t.Fatal("no error within 10s for a version that does not compile")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if in := r.InForce(); in.Index != 9 || !strings.Contains(r.Error(), "index 12") || !strings.Contains(r.Error(), "Invalid protocol") {
		t.Fatalf("after version 12: %+v, error %q", in, r.Error())
	}
	select {
	case p := <-out:
		t.Fatalf("a policy was sent for a version that does not compile: %+v", p)
	default:
	}
}
