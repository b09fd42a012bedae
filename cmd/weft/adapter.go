package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/adapters/kubernetes"
	"github.com/weftmesh/weft/adapters/local"
	"github.com/weftmesh/weft/adapters/mesos"
	"github.com/weftmesh/weft/adapters/nomad"
	"github.com/weftmesh/weft/core/version"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/plugins/sdk"
)

// builtinAdapters are the adapters this binary serves with
// `weft adapter <name>`; the controller launches them as plugin processes,
// through the same go-plugin path as third-party adapters. One line each.
var builtinAdapters = map[string]func() plugins.Adapter{
	"local":      func() plugins.Adapter { a := local.New(); a.Version = version.Version; return a },
	"kubernetes": func() plugins.Adapter { a := kubernetes.New(); a.Version = version.Version; return a },
	"nomad":      func() plugins.Adapter { a := nomad.New(); a.Version = version.Version; return a },
	"mesos":      func() plugins.Adapter { a := mesos.New(); a.Version = version.Version; return a },
}

// newAdapterCmd is `weft adapter <name>`: the built-in adapters, served as
// plugin processes. The controller launches them; people don't.
func newAdapterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "adapter",
		Short: "Serve a built-in adapter as a plugin process (launched by the controller, not by hand)",
		Long: `Serve a built-in adapter as a plugin process.

The controller launches these itself, as plugin processes of this binary,
for every --adapter NAME=SOURCE whose NAME is built in. Run by hand, an
adapter only says that it is a plugin and exits: to run one, start the
controller, for example

  weft controller --policy-dir examples/local/policy --adapter local=examples/local/workloads.hcl`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE:   func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	names := make([]string, 0, len(builtinAdapters))
	for n := range builtinAdapters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		newAdapter := builtinAdapters[name]
		long := "Serve the built-in " + name + " adapter as a plugin process (the controller launches it).\n"
		if info, err := newAdapter().Info(context.Background()); err == nil {
			long += "\n" + optionsTable(name, info.Options)
		}
		cmd.AddCommand(&cobra.Command{
			Use:   name,
			Short: "Serve the built-in " + name + " adapter",
			Long:  long,
			Args:  cobra.NoArgs,
			Run:   func(*cobra.Command, []string) { sdk.Serve(newAdapter()) },
		})
	}
	return cmd
}

// optionsTable is an adapter's option schema as `weft adapter NAME --help`
// prints it: what an operator gives the controller with --adapter-option.
func optionsTable(adapter string, specs []plugins.OptionSpec) string {
	if len(specs) == 0 {
		return "The " + adapter + " adapter takes no options.\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Options (weft controller --adapter-option %s.NAME=VALUE):\n\n", adapter)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  NAME\tTYPE\tDEFAULT\tREQUIRED\tDESCRIPTION")
	for _, o := range specs {
		def, req := o.Default, "no"
		if def == "" {
			def = "-"
		}
		if o.Required {
			req = "yes"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", o.Name, o.TypeText(), def, req, o.Description)
	}
	_ = w.Flush()
	return b.String()
}
