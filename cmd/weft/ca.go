package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/ca"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Inspect and rotate the mesh's certificate authority",
		Long: `Inspect and rotate the root of the mesh's certificate authority, through a
running controller's admin API.

Rotation drops no connection. "weft ca rotate" makes a new root the one that
signs certificates and has the old root cross-sign it. Every sidecar gets the
new trust bundle with its next configuration (at once), trusts both roots,
and renews its certificate from the new root right away; a new certificate
carries the cross-signature, so a peer that has not heard of the new root yet
still accepts it. The old root stays trusted until every certificate it
signed has expired (the leaf lifetime, 24h, after the rotation), then leaves
the bundle by itself, also across controller restarts: the state is in
DATA_DIR/ca. Rotating again before then is fine. Controller replicas that
share DATA_DIR/ca follow a rotation made through any one of them within 10s.

"weft ca roots" lists the roots, their state, and how many sidecars hold a
certificate of each; "weft ca roots --pem" prints the trust bundle. Where you
hand new sidecars a bootstrap bundle yourself (a Nomad template, a Kubernetes
ConfigMap), update it with that output before the old root retires.
` + adminHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCARotateCmd(), newCARootsCmd())
	return cmd
}

func newCARotateCmd() *cobra.Command {
	var a adminFlags
	var asJSON bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new root the signing root, without dropping traffic",
		Long: `Make a new CA root the one that signs sidecar certificates. The old root
cross-signs the new one and stays trusted until every certificate it signed
has expired; sidecars get the new bundle and a new certificate at once.

With --wait, wait until every connected sidecar holds a certificate of the
new root (or the time is up, which is an error).
` + adminHelp,
		Example: `  weft ca rotate --admin https://127.0.0.1:7401 --data-dir .weft
  weft ca rotate --wait 1m && weft ca roots`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait < 0 {
				return fmt.Errorf("--wait %v: want a duration of 0 or more, e.g. 1m", wait)
			}
			var rot ca.Rotation
			if err := a.call("POST", "/v1/ca/rotate", &rot); err != nil {
				return fmt.Errorf("rotating the CA root: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(out, rot); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "Rotated the CA root.\n  active root: %s (%s)\n  old root:    %s, trusted until %s, when the last certificate it signed expires\n",
					rot.New.ID, rot.New.Subject, rot.Old.ID, rot.Old.RetireAt.UTC().Format(time.RFC3339))
				fmt.Fprintln(out, "Sidecars get the new trust bundle now and renew from the new root; `weft ca roots` shows their progress.")
			}
			if wait == 0 {
				return nil
			}
			return waitForRoot(out, &a, rot.New.ID, wait, asJSON)
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every connected sidecar to hold a certificate of the new root")
	return cmd
}

// waitForRoot polls the roots until no connected sidecar holds a leaf of
// another root.
func waitForRoot(out io.Writer, a *adminFlags, root string, wait time.Duration, quiet bool) error {
	start := time.Now()
	deadline := start.Add(wait)
	for {
		var rep api.RootsReport
		err := a.call("GET", "/v1/ca/roots", &rep)
		if err == nil {
			onNew, onOther := 0, rep.SidecarsUnknown
			for _, r := range rep.Roots {
				if r.ID == root {
					onNew += r.Sidecars
				} else {
					onOther += r.Sidecars
				}
			}
			if onOther == 0 {
				if !quiet {
					fmt.Fprintf(out, "All %d connected sidecars hold a certificate of the new root (after %v).\n", onNew, time.Since(start).Round(time.Millisecond))
				}
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("waiting for the sidecars to renew: after %v, %d still hold a certificate of another root (or one this controller did not issue); they keep working, the old root is still trusted; see `weft ca roots` and the sidecars' logs", wait, onOther)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("waiting for the sidecars to renew: %w", err)
		}
		time.Sleep(200 * time.Millisecond) // polling the admin API, which has no push
	}
}

func newCARootsCmd() *cobra.Command {
	var a adminFlags
	var asJSON, asPEM bool
	cmd := &cobra.Command{
		Use:   "roots",
		Short: "List the CA's roots, their state and the sidecars holding a certificate of each",
		Long: `List the CA's roots, their state and how many connected sidecars hold a
certificate of each. With --pem, print the trust bundle: what new sidecars
start with, and what WEFT_CACERT points at on a machine without the
controller's data directory.
` + adminHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep api.RootsReport
			if err := a.call("GET", "/v1/ca/roots", &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				return printJSON(out, rep)
			case asPEM:
				_, err := io.WriteString(out, rep.BundlePEM)
				return err
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			writeRoots(tw, rep.Roots)
			if rep.SidecarsUnknown > 0 {
				fmt.Fprintf(tw, "\n%d connected sidecars hold a certificate this controller did not issue (another replica or an earlier run did).\n", rep.SidecarsUnknown)
			}
			return tw.Flush()
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	cmd.Flags().BoolVar(&asPEM, "pem", false, "print the trust bundle (every root, PEM), e.g. for the bundle new sidecars start with")
	cmd.MarkFlagsMutuallyExclusive("json", "pem")
	return cmd
}

func writeRoots(w io.Writer, roots []api.RootReport) {
	fmt.Fprintln(w, "\nROOT\tSTATE\tSUBJECT\tEXPIRES\tSIDECARS")
	for _, r := range roots {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", r.ID, r.State(), r.Subject, r.NotAfter.UTC().Format("2006-01-02"), r.Sidecars)
	}
}

// shortID is the start of a root ID, enough to tell roots apart in a table.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
