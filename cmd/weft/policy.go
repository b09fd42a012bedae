package main

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	policyhcl "github.com/weftmesh/weft/hcl"
)

// newPolicyCmd is the `weft policy` command group: tools for policy authors.
func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check HCL policy files",
		Long: `Tools for policy authors. Policy is a set of *.hcl files declaring the mesh,
its services with their upstreams, and intentions that allow or deny
connections between services.`,
		// Without Args and RunE cobra would print help and succeed on
		// `weft policy bogus`; reject unknown subcommands instead.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPolicyValidateCmd())
	return cmd
}

func newPolicyValidateCmd() *cobra.Command {
	var noColor bool
	cmd := &cobra.Command{
		Use:   "validate [FILE|DIR]...",
		Short: "Check policy files and report every error with its file and line",
		Long: `Validate loads the policy from the given files and directories (every *.hcl
file of a directory, merged; the current directory when none is given),
reports every problem it finds with the offending source line, and exits
non-zero if there is any error. On success it prints a one-line summary.`,
		Example: `  weft policy validate ./policy
  weft policy validate mesh.hcl services.hcl`,
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
			fmt.Fprintf(cmd.OutOrStdout(), "policy OK: %s\n", policyhcl.Summary(p))
			return nil
		},
	}
	cmd.Flags().BoolVar(&noColor, "no-color", false, "never color the diagnostics (default: color when stderr is a terminal and NO_COLOR is unset)")
	return cmd
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
