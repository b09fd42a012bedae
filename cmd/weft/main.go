// Command weft is the operator's binary: the controller, the policy tools,
// and the built-in adapters (which the controller launches as plugin
// processes of this same binary). The sidecar is the separate, leaner
// weft-proxy.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/version"
)

func main() {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "Weft: a service mesh for Nomad, Mesos, Kubernetes and local processes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newNomadCmd())
	root.AddCommand(newControllerCmd(), newPolicyCmd(), newAdapterCmd(), newStatusCmd(), newStatCmd(), newCheckCmd(), newCACmd(), newTapCmd(), newTopCmd(), newAuthzCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "weft", version.Version) },
	})
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		// A command with its own exit codes (weft authz: 1 denied, 2 error).
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}
