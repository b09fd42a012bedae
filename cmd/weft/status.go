package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/refusals"
)

func newStatusCmd() *cobra.Command {
	var a adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running controller knows: adapters, instances, sidecars, CA roots",
		Long: `Show what a running controller knows: its adapters, the instances they
report, the connected sidecars and their configuration versions, and the CA
roots.
` + adminHelp,
		Example: `  weft status --data-dir .weft
  WEFT_ADDR=https://weft-controller.internal:7401 WEFT_TOKEN=$(cat token) WEFT_CACERT=ca.pem weft status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep api.StatusReport
			if err := a.call("GET", "/v1/status", &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, rep)
			}
			fmt.Fprintf(out, "policy: %s\n", rep.Policy)
			if rep.PolicyInForce != nil {
				fmt.Fprintf(out, "policy in force: %s\n", describeInForce(rep.PolicyInForce))
			}
			writeRaft(out, rep.Raft)
			if rep.PolicyError != "" {
				fmt.Fprintf(out, "policy change rejected: %s\n", rep.PolicyError)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			now := time.Now()
			fmt.Fprintln(tw, "\nADAPTER\tPID\tRUNNING\tRESTARTS\tLAST ERROR")
			for _, a := range rep.Adapters {
				fmt.Fprintf(tw, "%s\t%d\t%v\t%d\t%s\n", a.Name, a.Pid, a.Running, a.Restarts, lastErrorCell(a, now))
			}
			switch {
			case len(rep.WaitingFor) > 0 && !rep.WaitedOut:
				fmt.Fprintf(tw, "WAITING for the first snapshot of adapter %s: no configuration is served until every adapter has reported (at most 30s after the start)\n", strings.Join(rep.WaitingFor, ", "))
			case len(rep.WaitingFor) > 0:
				fmt.Fprintf(tw, "WARNING: adapter %s sent no snapshot within 30s of the start: configurations are served without its endpoints until it does\n", strings.Join(rep.WaitingFor, ", "))
			}
			fmt.Fprintln(tw, "\nINSTANCE\tSERVICE\tADDRESS\tHEALTH\tISOLATION\tIDENTITY")
			for _, in := range rep.Instances {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Service, in.Address, healthCell(in), isolationCell(in.Isolation), in.Identity)
			}
			if rep.Unisolated > 0 {
				fmt.Fprintf(tw, "WARNING: %d of %d instances are not isolated: any local process can reach their app port without the mesh (no mTLS, no policy, a forged X-Weft-Caller is believed) and use their outbound ports. Run `weft check` on their node.\n",
					rep.Unisolated, len(rep.Instances))
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
			writeJWKS(tw, rep.JWKS, now)
			writeDropped(tw, rep.Dropped, rep.DroppedCounts)
			writeRoots(tw, rep.Roots)
			if err := tw.Flush(); err != nil {
				return err
			}
			writeRefused(out, rep.RefusedHandshakes)
			writeIntrusions(out, rep)
			return nil
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return cmd
}

// healthCell is an instance's health, and, when its sidecar's active
// check is what makes it critical, that check's reason:
// "critical (sidecar check: GET /health: 500)".
func healthCell(in api.InstanceReport) string {
	if in.HealthSource == api.HealthFromSidecarCheck {
		return fmt.Sprintf("%s (sidecar check: %s)", in.Health, in.HealthReason)
	}
	return in.Health
}

// lastErrorCell is an adapter's LAST ERROR with its age: "(12s ago)
// Nomad does not answer: ...", marked "now:" while the adapter cannot
// read its scheduler.
func lastErrorCell(a api.AdapterReport, now time.Time) string {
	if a.LastError == "" {
		return ""
	}
	msg := strings.ReplaceAll(a.LastError, "\n", " ")
	if a.SourceFailing {
		msg = "now: " + msg
	}
	if a.LastErrorAt == nil {
		return msg
	}
	age := now.Sub(*a.LastErrorAt).Round(time.Second)
	if age < 0 {
		age = 0
	}
	return fmt.Sprintf("(%s ago, %s) %s", age, a.LastErrorAt.UTC().Format(time.TimeOnly), msg)
}

// writeJWKS lists the JWT key sets the controller reads, with how old
// the keys in force are and why the last read failed.
func writeJWKS(tw io.Writer, sets []api.JWKSReport, now time.Time) {
	if len(sets) == 0 {
		return
	}
	fmt.Fprintln(tw, "\nJWT KEYS\tBYTES\tREAD\tLAST ERROR")
	for _, k := range sets {
		read := "never: its providers refuse every token"
		if k.ReadAt != nil {
			read = now.Sub(*k.ReadAt).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", k.Source, k.KeyBytes, read, strings.ReplaceAll(k.Error, "\n", " "))
	}
}

// writeDropped lists the instances left out for a reason, and the count
// per reason.
func writeDropped(tw io.Writer, drops []model.Dropped, counts map[string]int) {
	total := 0
	reasons := make([]string, 0, len(counts))
	for r, n := range counts {
		reasons = append(reasons, r)
		total += n
	}
	if total == 0 {
		return
	}
	sort.Strings(reasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, counts[r])
	}
	listed := ""
	if len(drops) < total {
		listed = fmt.Sprintf("; the first %d listed", len(drops))
	}
	fmt.Fprintf(tw, "\nDROPPED: %d (%s): left out of the mesh, an upstream port ignored, or a proxy mode the policy does not give; fix each as DETAIL says%s\n", total, strings.Join(parts, ", "), listed)
	fmt.Fprintln(tw, "ADAPTER\tINSTANCE\tREASON\tDETAIL")
	for _, d := range drops {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Adapter, d.Instance, d.Reason, strings.ReplaceAll(d.Detail, "\n", " "))
	}
}

// writeRefused prints the refused handshakes of each API, if any:
// "refused handshakes: sidecar API 500 (not_tls 400, no_client_certificate 100)".
func writeRefused(w io.Writer, refused map[string]refusals.Counts) {
	var parts []string
	for _, api := range []struct{ key, name string }{{"sidecar_api", "sidecar API"}, {"admin_api", "admin API"}} {
		c := refused[api.key]
		if c.Total == 0 {
			continue
		}
		var reasons []string
		for _, r := range refusals.Reasons {
			if n := c.ByReason[r]; n > 0 {
				reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
			}
		}
		parts = append(parts, fmt.Sprintf("%s %d (%s)", api.name, c.Total, strings.Join(reasons, ", ")))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "\nrefused handshakes: %s\n", strings.Join(parts, "; "))
	}
}

// writeIntrusions prints the sources the sidecars see the most intrusion
// signals from, the sources they block, and what the controller's own
// defences refused.
func writeIntrusions(out io.Writer, rep api.StatusReport) {
	if len(rep.Intrusions) > 0 {
		fmt.Fprintln(out, "\nIntrusion signals (sidecars' top sources; docs/protection.md):")
		for _, ir := range rep.Intrusions {
			for _, s := range ir.Sources {
				kinds := make([]string, 0, len(s.ByKind))
				for k, n := range s.ByKind {
					kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
				}
				sort.Strings(kinds)
				fmt.Fprintf(out, "  %s (%s): %s %d signals: %s\n", ir.Instance, ir.Service, s.Source, s.Total, strings.Join(kinds, " "))
			}
			for _, b := range ir.Blocked {
				fmt.Fprintf(out, "  %s (%s): BLOCKED %s until %s: %s\n", ir.Instance, ir.Service, b.Source, b.Until.Format(time.RFC3339), b.Reason)
			}
		}
	}
	for name, counts := range rep.ProtectionRefused {
		if len(counts) > 0 {
			fmt.Fprintf(out, "Controller %s protection refused: %v\n", name, counts)
		}
	}
}
