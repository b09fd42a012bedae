package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var admin, dataDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running controller knows: adapters, instances, sidecars",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
			if err != nil {
				return fmt.Errorf("reading the admin token: %w (pass the controller's --data-dir)", err)
			}
			req, _ := http.NewRequest("GET", "http://"+admin+"/v1/status", nil)
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				return fmt.Errorf("asking the controller at %s: %w (is it running? pass its --admin address)", admin, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("asking the controller at %s: %s", admin, resp.Status)
			}
			var rep StatusReport
			if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
				return fmt.Errorf("decoding the controller's status: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
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
			fmt.Fprintln(tw, "\nSIDECAR\tIDENTITY\tVERSION\tACKED\tREJECTED")
			for _, s := range rep.Sidecars {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", s.Instance, s.Identity, s.Version, s.AckedVersion, s.RejectError)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "127.0.0.1:7401", "the controller's admin API address")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".weft", "the controller's data directory (for the admin token)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return cmd
}
