package main

import (
	"fmt"
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
			fmt.Fprintln(tw, "\nINSTANCE\tSERVICE\tADDRESS\tHEALTH\tISOLATION\tIDENTITY")
			for _, in := range rep.Instances {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Service, in.Address, in.Health, isolationCell(in.Isolation), in.Identity)
			}
			if rep.Unisolated > 0 {
				fmt.Fprintf(tw, "WARNING: %d of %d instances are not isolated: any local process can reach their app port without the mesh (no mTLS, no policy, a forged X-Weft-Caller is believed) and use their outbound ports. Run `weft check` on their node.\n",
					rep.Unisolated, len(rep.Instances))
			}
			fmt.Fprintln(tw, "\nSIDECAR\tIDENTITY\tVERSION\tACKED\tLEAF ROOT\tREJECTED")
			for _, s := range rep.Sidecars {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", s.Instance, s.Identity, s.Version, s.AckedVersion, shortID(s.LeafRoot), s.RejectError)
			}
			writeRoots(tw, rep.Roots)
			return tw.Flush()
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return cmd
}
