package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/api"
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
