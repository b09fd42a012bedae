// Command weft is the operator's binary: the controller, the policy tools,
// and the built-in adapters (which the controller launches as plugin
// processes of this same binary). The sidecar is the separate, leaner
// weft-proxy.
//
// Every subcommand takes --log-level (debug, info, warn, error) and
// --log-format (text, json) for what it logs (core/logging): the
// controller logs everything it, its adapter plugins (which get its level
// in plugins.LogLevelEnv), the admin server and gRPC say through that one
// logger. Commands that print for a human (policy validate and plan,
// status, check) keep printing so. A bad value exits with status 2.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/logging"
	"github.com/weftmesh/weft/core/version"
)

// logFlags are --log-level and --log-format, for every subcommand.
var logFlags = logging.Flags{Level: "info", Format: "text"}

func main() {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "Weft: a service mesh for Nomad, Mesos, Kubernetes and local processes",
		SilenceUsage:  true,
		SilenceErrors: true,
		// A bad logging flag is refused before any command runs.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			_, err := logFlags.Logger(io.Discard)
			return err
		},
	}
	logFlags.Register(root.PersistentFlags())
	root.AddCommand(newNomadCmd())
	root.AddCommand(newControllerCmd(), newPolicyCmd(), newAdapterCmd(), newStatusCmd(), newStatCmd(), newCheckCmd(), newCACmd(), newTapCmd(), newTopCmd(), newAuthzCmd(), newOperatorCmd(), newInjectorCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "weft", version.Version) },
	})
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		var fe *logging.FlagError
		if errors.As(err, &fe) {
			os.Exit(2)
		}
		// A command with its own exit codes (weft authz: 1 denied, 2 error).
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}
