package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/policy"
	"github.com/weftmesh/weft/core/state"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// `weft policy apply`, `show` and `history`: the policy of a raft cluster
// of controllers, replicated state (core/state policy.go) reached through
// the admin API (core/api policy_apply.go).

func newPolicyApplyCmd() *cobra.Command {
	var a adminFlags
	var checkIndex uint64
	var appliedBy string
	var noColor bool
	cmd := &cobra.Command{
		Use:   "apply DIR [FILE|DIR]...",
		Short: "Apply a policy to a raft cluster of controllers, after showing its plan",
		Long: `Apply loads and validates the policy from the given files and directories as
validate does (a policy with errors is reported with its lines and never
sent), shows what it changes against the cluster's active policy as plan
does, and then applies it atomically through the raft leader (a follower
forwards it): every replica compiles the same files, and the applied
version is recorded with who applied it and when (weft policy history).

Apply refuses, and changes nothing, if the active policy's index is not the
one checked: --check-index N, as an earlier plan printed it (0: no policy
applied yet), or, without the flag, the index of the policy this command
just planned against. So a policy someone applied in between is never
overwritten unseen; plan again and apply with the new index.

A controller without --raft-dir has no replicated policy: change the files
of its watched --policy-dir instead.
` + adminHelp,
		Example: `  weft policy apply ./policy
  weft policy plan ./policy.next          # prints the index to check
  weft policy apply ./policy.next --check-index 42 --applied-by alice`,
		Args:         cobra.MinimumNArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			var check *uint64
			if cmd.Flags().Changed("check-index") {
				check = &checkIndex
			}
			return runPolicyApply(cmd.OutOrStdout(), cmd.ErrOrStderr(), &a, args, check, appliedBy, !noColor && colorTerminal(cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().Uint64Var(&checkIndex, "check-index", 0, "apply only if the active policy's index is this one (0: none applied yet), as `weft policy plan` or `weft policy history` shows it; default: the index of the policy planned against")
	cmd.Flags().StringVar(&appliedBy, "applied-by", "", "who applies it, for the history (default: USER@HOST of this command)")
	cmd.Flags().BoolVar(&noColor, "no-color", false, "never color the diagnostics")
	a.register(cmd)
	return cmd
}

// policyClient is the admin API client of the policy commands: a refusal
// is the controller's own message, which says what to do.
func policyClient(a *adminFlags) (*api.Client, error) {
	cfg, err := a.resolve()
	if err != nil {
		return nil, err
	}
	return api.New(cfg)
}

func controllerSays(err error) error {
	var se *api.StatusError
	if errors.As(err, &se) && se.Message != "" {
		return fmt.Errorf("the controller (%s %s) answered %s: %s", se.Method, se.URL, se.Status, se.Message)
	}
	return err
}

func runPolicyApply(stdout, stderr io.Writer, a *adminFlags, args []string, check *uint64, appliedBy string, color bool) error {
	newP, diags, parsed := policyhcl.Load(args...)
	if len(diags) > 0 {
		if err := policyhcl.WriteDiagnostics(stderr, diags, parsed, color); err != nil {
			return err
		}
		fmt.Fprintln(stderr)
	}
	if newP == nil {
		return fmt.Errorf("the policy is invalid: %s; nothing was applied", countErrors(diags))
	}
	files := map[string][]byte{}
	for path, f := range parsed {
		name := filepath.Base(path)
		if _, dup := files[name]; dup {
			return fmt.Errorf("two policy files are named %s: a replicated policy keeps files by base name; rename one", name)
		}
		files[name] = f.Bytes
	}
	if err := state.CheckPolicyFiles(files); err != nil {
		return err
	}
	c, err := policyClient(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cur api.PolicySources
	if err := c.Call(ctx, "GET", "/v1/policy", nil, &cur); err != nil {
		return controllerSays(err)
	}
	in := cur.InForce
	if in != nil && in.Watched {
		return fmt.Errorf("the controller at %s runs without raft: its policy is the watched --policy-dir %s; copy the files there (it reloads them), or run the controllers as a raft cluster", c.URL(), in.Dir)
	}
	planned := uint64(0)
	where := "the controller at " + c.URL()
	if in != nil && in.Source == "replicated" {
		planned = in.Index
		where += fmt.Sprintf(" (replicated policy, index %d)", in.Index)
	} else {
		where += " (its --policy-dir, the bootstrap policy: nothing applied yet, index 0)"
	}
	byName := make(map[string][]byte, len(cur.Files))
	for n, src := range cur.Files {
		byName[n] = []byte(src)
	}
	oldP, oldDiags, oldFiles := policyhcl.LoadSources(byName)
	if oldP == nil {
		_ = policyhcl.WriteDiagnostics(stderr, oldDiags, oldFiles, color)
		fmt.Fprintf(stderr, "Note: the policy of %s does not compile here; no plan shown.\n\n", where)
	} else {
		fmt.Fprintf(stdout, "Comparing with the policy of %s.\n\n", where)
		if err := policy.Diff(oldP, newP).Write(stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	if check == nil {
		check = &planned
	}
	if appliedBy == "" {
		appliedBy = whoAmI()
	}
	var resp api.PolicyApplyResponse
	if err := c.Call(ctx, "POST", "/v1/policy/apply", api.PolicyApplyRequest{Files: files, CheckIndex: check, AppliedBy: appliedBy}, &resp); err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound && in == nil {
			return fmt.Errorf("%w (is the controller older than this weft? upgrade it)", err)
		}
		return controllerSays(err)
	}
	v := resp.Version
	if resp.Unchanged {
		fmt.Fprintf(stdout, "No change: these files are the active policy already (index %d, %s); nothing was recorded.\n", v.Index, v.Digest)
		return nil
	}
	fmt.Fprintf(stdout, "Applied: policy index %d, %s, by %s (%s) at %s.\n", v.Index, v.Digest, orNone(v.AppliedBy), v.Token, v.AppliedAt.Format(time.RFC3339))
	fmt.Fprintf(stdout, "Every replica compiles it; `weft status` on each says \"policy in force: replicated, index %d\".\n", v.Index)
	return nil
}

// whoAmI is USER@HOST of this command, for the history.
func whoAmI() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	switch {
	case name != "" && host != "":
		return name + "@" + host
	case name != "":
		return name
	}
	return host
}

func newPolicyShowCmd() *cobra.Command {
	var a adminFlags
	var index uint64
	var asJSON bool
	var writeDir string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the files of the controller's policy (or of a past applied version)",
		Long: `Show prints the policy the controller holds: where it comes from (the
replicated state with its index, who applied it and when, or the
--policy-dir), then each file, headed "==> NAME <==". With --index N it
prints the version applied at index N, as weft policy history lists them.
With --write DIR it writes the files into DIR instead (to edit them and
apply again).
` + adminHelp,
		Example: `  weft policy show
  weft policy show --index 42
  weft policy show --write ./policy.next`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := policyClient(&a)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var header string
			files := map[string][]byte{}
			var out any
			if cmd.Flags().Changed("index") {
				var v state.PolicyVersion
				if err := c.Call(ctx, "GET", fmt.Sprintf("/v1/policy/versions/%d", index), nil, &v); err != nil {
					return controllerSays(err)
				}
				header = fmt.Sprintf("Policy applied at index %d by %s (%s) at %s, %s: %s",
					v.Index, orNone(v.AppliedBy), v.Token, v.AppliedAt.Format(time.RFC3339), v.Digest, v.Summary)
				files, out = v.Files, v
			} else {
				var s api.PolicySources
				if err := c.Call(ctx, "GET", "/v1/policy", nil, &s); err != nil {
					return controllerSays(err)
				}
				header = "Policy in force: " + describeInForce(s.InForce)
				for n, src := range s.Files {
					files[n] = []byte(src)
				}
				out = s
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			if writeDir != "" {
				return writePolicyFiles(cmd.OutOrStdout(), writeDir, files)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, header)
			names := make([]string, 0, len(files))
			for n := range files {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(w, "\n==> %s <==\n", n)
				_, _ = w.Write(files[n])
				if b := files[n]; len(b) > 0 && b[len(b)-1] != '\n' {
					fmt.Fprintln(w)
				}
			}
			return nil
		},
	}
	cmd.Flags().Uint64Var(&index, "index", 0, "print the version applied at this index (weft policy history lists them)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON")
	cmd.Flags().StringVar(&writeDir, "write", "", "write the files into this directory (created; existing files of the same names are replaced)")
	a.register(cmd)
	return cmd
}

// writePolicyFiles writes a policy's files into dir. The names come from
// the controller: each must be a plain base name.
func writePolicyFiles(w io.Writer, dir string, files map[string][]byte) error {
	if err := state.CheckPolicyFiles(files); err != nil {
		return fmt.Errorf("the controller's policy files: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Join(dir, n), err)
		}
	}
	fmt.Fprintf(w, "wrote %d policy files into %s\n", len(files), dir)
	return nil
}

// describeInForce says in one line where a controller's policy comes from.
func describeInForce(in *api.PolicyInForce) string {
	switch {
	case in == nil:
		return "unknown (an older controller)"
	case in.Source == "replicated":
		at := ""
		if in.AppliedAt != nil {
			at = " at " + in.AppliedAt.Format(time.RFC3339)
		}
		return fmt.Sprintf("replicated, index %d, applied by %s (%s)%s, %s", in.Index, orNone(in.AppliedBy), in.Token, at, in.Digest)
	case in.Watched:
		return fmt.Sprintf("--policy-dir %s (watched)", in.Dir)
	}
	return fmt.Sprintf("--policy-dir %s, the bootstrap policy (read at start, not watched; nothing applied through `weft policy apply` yet)", in.Dir)
}

func newPolicyHistoryCmd() *cobra.Command {
	var a adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the policy versions applied to a raft cluster of controllers",
		Long: `History lists the policy versions applied with weft policy apply, newest
first (the first is active): index, when, who (and which admin token),
digest and summary. The replicated state keeps the last ` + fmt.Sprint(state.MaxPolicyHistory) + `; weft policy
show --index N prints one.
` + adminHelp,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := policyClient(&a)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var h api.PolicyHistory
			if err := c.Call(ctx, "GET", "/v1/policy/history", nil, &h); err != nil {
				return controllerSays(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), h)
			}
			return writeHistory(cmd.OutOrStdout(), h)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON")
	a.register(cmd)
	return cmd
}

func writeHistory(w io.Writer, h api.PolicyHistory) error {
	if len(h.Versions) == 0 {
		_, err := fmt.Fprintln(w, "No policy applied yet: the replicas serve their --policy-dir (the bootstrap policy). `weft policy apply DIR` applies one.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tAPPLIED AT\tBY\tTOKEN\tDIGEST\tSUMMARY")
	for i, v := range h.Versions {
		mark := ""
		if i == 0 {
			mark = " (active)"
		}
		digest := v.Digest
		if len(digest) > 19 {
			digest = digest[:19]
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\t%s\n", v.Index, mark, v.AppliedAt.Format(time.RFC3339), orNone(v.AppliedBy),
			strings.TrimPrefix(v.Token, "admin token "), digest, v.Summary)
	}
	return tw.Flush()
}
