package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/policy"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// newPolicyCmd is the `weft policy` command group: tools for policy authors.
func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check HCL policy files and plan changes",
		Long: `Tools for policy authors. Policy is a set of *.hcl files declaring the mesh,
its services with their upstreams, subsets, routes and limits, and
intentions that allow or deny traffic between services. validate checks a
policy; plan shows what changing to it would do; on a raft cluster of
controllers, apply applies it (show and history read what was applied).`,
		// Without Args and RunE cobra would print help and succeed on
		// `weft policy bogus`; reject unknown subcommands instead.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPolicyValidateCmd(), newPolicyPlanCmd(), newPolicyApplyCmd(), newPolicyShowCmd(), newPolicyHistoryCmd())
	return cmd
}

func newPolicyPlanCmd() *cobra.Command {
	var against string
	var a adminFlags
	var noColor bool
	cmd := &cobra.Command{
		Use:   "plan NEW_POLICY [FILE|DIR]...",
		Short: "Show what a policy change would do before it is applied",
		Long: `Plan loads the new policy from the given files and directories, compares it
with the policy in force (the running controller's, asked through its admin
API, or another directory with --against) and prints, like nomad job plan,
what changes per service (upstreams, subsets, routes, limits) and intention,
and which caller -> service flows become allowed or denied. A new policy
with errors is reported like validate does and the plan fails. Compared with
the controller, it also warns about every instance with an upstream port
(a Nomad job's weft upstream, a Mesos weft.upstream label) for a service the
new policy does not declare as that instance's upstream: the port would be
ignored.
` + adminHelp,
		Example: `  weft policy plan ./policy.next --against ./policy
  weft policy plan ./policy.next --admin https://127.0.0.1:7401 --data-dir .weft
  WEFT_ADDR=https://weft-controller.internal:7401 WEFT_TOKEN=... WEFT_CACERT=ca.pem weft policy plan ./policy.next`,
		Args:         cobra.MinimumNArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			color := !noColor && colorTerminal(stderr)
			newP, diags, files := policyhcl.Load(args...)
			if len(diags) > 0 {
				if err := policyhcl.WriteDiagnostics(stderr, diags, files, color); err != nil {
					return err
				}
				fmt.Fprintln(stderr)
			}
			if newP == nil {
				return fmt.Errorf("the new policy is invalid: %s", countErrors(diags))
			}
			var oldP *policy.Policy
			var where string
			var inForce *api.PolicyInForce
			if against != "" {
				where = against
				oldP, diags, files = policyhcl.Load(against)
			} else {
				srcs, url, err := fetchPolicy(&a)
				where = "the controller at " + url
				if err != nil {
					return err
				}
				inForce = srcs.InForce
				byName := make(map[string][]byte, len(srcs.Files))
				for n, src := range srcs.Files {
					byName[n] = []byte(src)
				}
				oldP, diags, files = policyhcl.LoadSources(byName)
			}
			if oldP == nil {
				_ = policyhcl.WriteDiagnostics(stderr, diags, files, color)
				return fmt.Errorf("the policy of %s is invalid: %s", where, countErrors(diags))
			}
			if against == "" {
				// The controller's instances: an upstream port the new
				// policy does not declare would be ignored.
				if err := warnUndeclared(stderr, &a, newP); err != nil {
					fmt.Fprintf(stderr, "Note: not checking the instances' upstream ports against the new policy: %v\n\n", err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Comparing with the policy of %s.\n\n", where)
			if err := policy.Diff(oldP, newP).Write(cmd.OutOrStdout()); err != nil {
				return err
			}
			writeApplyHint(cmd.OutOrStdout(), inForce, args)
			return nil
		},
	}
	cmd.Flags().StringVar(&against, "against", "", "compare with the policy in this file or directory instead of the controller's")
	a.register(cmd)
	cmd.Flags().BoolVar(&noColor, "no-color", false, "never color the diagnostics")
	return cmd
}

// fetchPolicy asks the controller for the sources of the policy it holds,
// and says where it asked.
func fetchPolicy(a *adminFlags) (*api.PolicySources, string, error) {
	cfg, err := a.resolve()
	if err != nil {
		return nil, "", fmt.Errorf("%w; or compare with a directory: --against DIR", err)
	}
	c, err := api.New(cfg)
	if err != nil {
		return nil, "", err
	}
	var srcs api.PolicySources
	err = c.Call(context.Background(), "GET", "/v1/policy", nil, &srcs)
	var se *api.StatusError
	if errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusMethodNotAllowed) {
		return nil, "", fmt.Errorf("%w (a controller without GET /v1/policy cannot be compared with; use --against DIR)", err)
	}
	if err != nil {
		return nil, "", err
	}
	return &srcs, c.URL(), nil
}

func newPolicyValidateCmd() *cobra.Command {
	var noColor, againstController bool
	var a adminFlags
	cmd := &cobra.Command{
		Use:   "validate [FILE|DIR]...",
		Short: "Check policy files and report every error with its file and line",
		Long: `Validate loads the policy from the given files and directories (every *.hcl
file of a directory, merged; the current directory when none is given),
reports every problem it finds with the offending source line, and exits
non-zero if there is any error. On success it prints a one-line summary.
With --against-controller it also asks a running controller for its
instances and warns about every upstream port (a Nomad job's weft upstream,
a Mesos weft.upstream label) for a service the policy does not declare as
that instance's upstream: the port would be ignored.
` + adminHelp,
		Example: `  weft policy validate ./policy
  weft policy validate mesh.hcl services.hcl
  weft policy validate ./policy --against-controller --data-dir .weft`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			p, diags, files := policyhcl.Load(args...)
			stderr := cmd.ErrOrStderr()
			if len(diags) > 0 {
				if err := policyhcl.WriteDiagnostics(stderr, diags, files, !noColor && colorTerminal(stderr)); err != nil {
					return err
				}
				fmt.Fprintln(stderr)
			}
			if p == nil {
				return fmt.Errorf("policy is invalid: %s", countErrors(diags))
			}
			if againstController {
				if err := warnUndeclared(stderr, &a, p); err != nil {
					return fmt.Errorf("checking the controller's instances against the policy: %w", err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy OK: %s\n", policyhcl.Summary(p))
			return nil
		},
	}
	cmd.Flags().BoolVar(&noColor, "no-color", false, "never color the diagnostics (default: color when stderr is a terminal and NO_COLOR is unset)")
	cmd.Flags().BoolVar(&againstController, "against-controller", false, "also warn about the controller's instances whose upstream ports the policy does not declare")
	a.register(cmd)
	return cmd
}

// warnUndeclared asks the controller for its instances and writes a
// warning for every upstream port of theirs that p does not declare.
func warnUndeclared(w io.Writer, a *adminFlags, p *policy.Policy) error {
	var rep api.StatusReport
	if err := a.call("GET", "/v1/status", &rep); err != nil {
		return err
	}
	n := 0
	for _, in := range rep.Instances {
		for _, up := range compile.UndeclaredUpstreams(p, in.Service, in.Ports) {
			n++
			fmt.Fprintf(w, "Warning: upstream %q of instance %s (adapter %s) is not declared: %s\n",
				up, in.ID, in.Adapter, compile.UndeclaredDetail(in.Service, up, in.Ports[compile.UpstreamPortPrefix+up]))
		}
	}
	if n > 0 {
		fmt.Fprintln(w)
	}
	return nil
}

// countErrors says how many error diagnostics there are, in words.
func countErrors(diags hcl.Diagnostics) string {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	if n == 1 {
		return "1 error"
	}
	return fmt.Sprintf("%d errors", n)
}

// colorTerminal reports whether w is a terminal that wants color.
func colorTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// writeApplyHint tells, after a plan against a raft cluster's policy, how
// to apply exactly that change, like nomad job plan's -check-index line.
func writeApplyHint(w io.Writer, in *api.PolicyInForce, args []string) {
	if in == nil || in.Watched {
		return
	}
	fmt.Fprintf(w, "\nTo apply this plan, and only if nobody applies another policy first:\n  weft policy apply %s --check-index %d\n", strings.Join(args, " "), in.Index)
}
