package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var a adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running controller knows: adapters, instances, sidecars, CA roots",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep StatusReport
			if err := a.call("GET", "/v1/status", &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, rep)
			}
			fmt.Fprintf(out, "policy: %s\n", rep.Policy)
			if rep.PolicyError != "" {
				fmt.Fprintf(out, "policy change rejected: %s\n", rep.PolicyError)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nADAPTER\tPID\tRUNNING\tRESTARTS\tLAST ERROR")
			for _, a := range rep.Adapters {
				fmt.Fprintf(tw, "%s\t%d\t%v\t%d\t%s\n", a.Name, a.Pid, a.Running, a.Restarts, a.LastError)
			}
			fmt.Fprintln(tw, "\nINSTANCE\tSERVICE\tADDRESS\tHEALTH\tIDENTITY")
			for _, in := range rep.Instances {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.ID, in.Service, in.Address, in.Health, in.Identity)
			}
			fmt.Fprintln(tw, "\nSIDECAR\tIDENTITY\tVERSION\tACKED\tLEAF ROOT\tREJECTED")
			for _, s := range rep.Sidecars {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", s.Instance, s.Identity, s.Version, s.AckedVersion, shortID(s.LeafRoot), s.RejectError)
			}
			if len(rep.Skipped) > 0 {
				if rep.IdentityBinding == "permissive" {
					fmt.Fprintln(tw, "\nWARNING: identity_binding is permissive: these unbound workloads are served anyway; add their bindings")
				}
				fmt.Fprintln(tw, "\nSKIPPED\tSERVICE\tREASON\tDETAIL")
				for _, s := range rep.Skipped {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Instance, s.Service, s.Reason, strings.ReplaceAll(s.Detail, "\n", " "))
				}
			}
			writeRoots(tw, rep.Roots)
			return tw.Flush()
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return cmd
}
