package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/protect"
	"github.com/weftmesh/weft/core/state"
)

// The policy as replicated state (issue 17 part 3): POST /v1/policy/apply
// (`weft policy apply`), GET /v1/policy/history (`weft policy history`),
// GET /v1/policy/versions/{index} (`weft policy show --index`). A
// controller without raft answers them 404 with what to do: its policy is
// its watched --policy-dir.

// PolicyStore is the replicated policy (core/state.Node implements it).
type PolicyStore interface {
	ApplyPolicy(state.PolicyApply) (v state.PolicyVersion, unchanged bool, err error)
	PolicyHistory() []state.PolicyVersion
	PolicyAt(index uint64) (state.PolicyVersion, bool)
}

// PolicyCompiler compiles a policy's files as every replica will: ok with
// the policy's one-line summary, or the diagnostics rendered with their
// files and lines. cmd/weft hands in the HCL package's (core does not
// read HCL).
type PolicyCompiler func(files map[string][]byte) (summary, diagnostics string, ok bool)

// PolicyApplyRequest is the body of POST /v1/policy/apply.
type PolicyApplyRequest struct {
	// Files are the policy's files by base name (*.hcl), their bytes.
	Files map[string][]byte `json:"files"`
	// CheckIndex, when set, is the index the active policy must have (0:
	// none applied yet), or the apply is refused (409) and nothing changes.
	CheckIndex *uint64 `json:"check_index,omitempty"`
	// AppliedBy names who applies it (the CLI's --applied-by, or the user
	// and host it runs as).
	AppliedBy string `json:"applied_by,omitempty"`
}

// PolicyApplyResponse is POST /v1/policy/apply's answer: the version now
// active (without its files), and whether the files were that version's
// already (nothing was recorded).
type PolicyApplyResponse struct {
	Version   state.PolicyVersion `json:"version"`
	Unchanged bool                `json:"unchanged,omitempty"`
}

// PolicyHistory is GET /v1/policy/history's answer: the kept versions,
// newest first, without their files.
type PolicyHistory struct {
	Versions []state.PolicyVersion `json:"versions"`
	// Kept is how many versions the state keeps.
	Kept int `json:"kept"`
}

// PolicyInForce says where the policy a controller compiles comes from
// (StatusReport.PolicyInForce, PolicySources.InForce).
type PolicyInForce struct {
	// Source is "directory" (the --policy-dir) or "replicated" (applied
	// through `weft policy apply`).
	Source string `json:"source"`
	// Dir is the --policy-dir; Watched whether its changes are taken (a
	// controller without raft).
	Dir     string `json:"dir,omitempty"`
	Watched bool   `json:"watched,omitempty"`
	// The replicated version in force (Source "replicated").
	Index     uint64     `json:"index,omitempty"`
	AppliedBy string     `json:"applied_by,omitempty"`
	Token     string     `json:"token,omitempty"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	Digest    string     `json:"digest,omitempty"`
	// Note says what the operator should know: the directory is only
	// the bootstrap policy, or is no longer read.
	Note string `json:"note,omitempty"`
}

// PolicyInForcer is implemented by a PolicyFiles that says where its
// policy comes from.
type PolicyInForcer interface {
	InForce() PolicyInForce
}

// MaxPolicyApplyBody bounds POST /v1/policy/apply: the files' limit in
// base64, and room for the rest.
const MaxPolicyApplyBody = state.MaxPolicyBytes*4/3 + 64<<10

// TokenName is how the state names an admin token: a fingerprint, never
// the token.
func TokenName(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "admin token sha256:" + hex.EncodeToString(sum[:4])
}

const noRaftPolicy = "this controller runs without raft (no --raft-dir): its policy is the watched --policy-dir; change the files there (the controller reloads them), or run the controllers as a raft cluster to apply policy with `weft policy apply`"

func routePolicy(mux *http.ServeMux, o Options) {
	noStore := func(w http.ResponseWriter) bool {
		if o.PolicyStore == nil {
			http.Error(w, noRaftPolicy, http.StatusNotFound)
			return true
		}
		return false
	}
	mux.HandleFunc("POST /v1/policy/apply", func(w http.ResponseWriter, r *http.Request) {
		if noStore(w) {
			return
		}
		code, msg, resp := applyPolicy(o, r)
		if code != http.StatusOK {
			http.Error(w, msg, code)
			return
		}
		writeJSON(w, resp)
	})
	mux.HandleFunc("GET /v1/policy/history", func(w http.ResponseWriter, r *http.Request) {
		if noStore(w) {
			return
		}
		writeJSON(w, PolicyHistory{Versions: o.PolicyStore.PolicyHistory(), Kept: state.MaxPolicyHistory})
	})
	mux.HandleFunc("GET /v1/policy/versions/{index}", func(w http.ResponseWriter, r *http.Request) {
		if noStore(w) {
			return
		}
		idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
		if err != nil {
			http.Error(w, "the index is a number, as `weft policy history` lists them", http.StatusBadRequest)
			return
		}
		v, ok := o.PolicyStore.PolicyAt(idx)
		if !ok {
			http.Error(w, fmt.Sprintf("no policy version at index %d: the state keeps the last %d applied; `weft policy history` lists them", idx, state.MaxPolicyHistory), http.StatusNotFound)
			return
		}
		writeJSON(w, v)
	})
}

// applyPolicy checks the request's limits before it parses anything,
// compiles the files as every replica will, and commits them through the
// leader. A policy with errors is never committed.
func applyPolicy(o Options, r *http.Request) (int, string, *PolicyApplyResponse) {
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxPolicyApplyBody+1))
	var capped *protect.ErrBodyTooLarge
	var maxBytes *http.MaxBytesError
	if err != nil && !errors.As(err, &capped) && !errors.As(err, &maxBytes) {
		return http.StatusBadRequest, "reading the request: " + err.Error(), nil
	}
	// The listener's own cap (core/protect) cut it: it is too large too.
	if err != nil || len(b) > MaxPolicyApplyBody {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the request is larger than %s: a replicated policy is at most %s of files",
			inputlimit.Bytes(MaxPolicyApplyBody), inputlimit.Bytes(state.MaxPolicyBytes)), nil
	}
	if err := inputlimit.JSONDepth(b, 8); err != nil {
		return http.StatusBadRequest, "decoding the request: " + err.Error(), nil
	}
	var req PolicyApplyRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return http.StatusBadRequest, "decoding the request: " + err.Error() + `; send {"files": {"NAME.hcl": BASE64, ...}, "check_index": N, "applied_by": "..."}`, nil
	}
	if err := state.CheckPolicyFiles(req.Files); err != nil {
		return http.StatusBadRequest, err.Error(), nil
	}
	if err := checkAppliedBy(req.AppliedBy); err != nil {
		return http.StatusBadRequest, err.Error(), nil
	}
	if o.CompilePolicy == nil {
		return http.StatusNotImplemented, "this controller cannot compile a policy it is sent", nil
	}
	summary, diags, ok := o.CompilePolicy(req.Files)
	if !ok {
		return http.StatusUnprocessableEntity, "the policy has errors; nothing was applied and the active policy stays in force:\n\n" + strings.TrimRight(diags, "\n"), nil
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	v, unchanged, err := o.PolicyStore.ApplyPolicy(state.PolicyApply{Files: req.Files, AppliedBy: req.AppliedBy, Token: TokenName(token),
		Summary: summary, CheckIndex: req.CheckIndex})
	var stale *state.StaleIndexError
	switch {
	case errors.As(err, &stale):
		return http.StatusConflict, err.Error(), nil
	case errors.Is(err, state.ErrNoLeader):
		return http.StatusServiceUnavailable, err.Error(), nil
	case err != nil:
		return http.StatusInternalServerError, err.Error(), nil
	}
	v.Files = nil
	return http.StatusOK, "", &PolicyApplyResponse{Version: v, Unchanged: unchanged}
}

// maxAppliedBy bounds applied_by (the state clips what is longer).
const maxAppliedBy = 512

// checkAppliedBy refuses an applied_by that `weft policy history`, `weft
// status` and the log could not print as it is: control characters
// (terminal escapes, a forged second line) or invalid UTF-8.
func checkAppliedBy(s string) error {
	ok := len(s) <= maxAppliedBy && utf8.ValidString(s)
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("applied_by %q: want at most %d bytes of printable UTF-8 naming who applies (--applied-by alice), without control characters", s, maxAppliedBy)
	}
	return nil
}
