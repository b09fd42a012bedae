package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/inputlimit"
)

func newOperatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Operate a cluster of controller replicas (raft peers, snapshots)",
		Long: `Operate a cluster of controller replicas, started with --raft-dir: list and
remove raft peers, save and restore the replicated state (the CA and its keys,
sealed with the state key, and the spent join tokens).
` + adminHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	r := &cobra.Command{Use: "raft", Short: "List and remove the cluster's raft peers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	r.AddCommand(newListPeersCmd(), newRemovePeerCmd())
	s := &cobra.Command{Use: "snapshot", Short: "Save and restore the replicated state", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	s.AddCommand(newSnapshotSaveCmd(), newSnapshotRestoreCmd())
	cmd.AddCommand(r, s)
	return cmd
}

func newListPeersCmd() *cobra.Command {
	var a adminFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list-peers",
		Short: "List the cluster's servers and which one leads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var peers api.RaftPeers
			if err := a.call("GET", "/v1/operator/raft/peers", &peers); err != nil {
				return fmt.Errorf("listing raft peers: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), peers)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tADDRESS\tSTATE\tVOTER")
			for _, p := range peers.Peers {
				st := "follower"
				if p.Leader {
					st = "leader"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", p.ID, p.Address, st, p.Suffrage == "Voter")
			}
			return tw.Flush()
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON")
	return cmd
}

func newRemovePeerCmd() *cobra.Command {
	var a adminFlags
	cmd := &cobra.Command{
		Use:   "remove-peer ID|RAFT_ADDRESS",
		Short: "Remove a replica that is gone for good from the cluster",
		Long: `Remove a server from the cluster's configuration, by its ID or raft address
(as list-peers shows them), so that quorum is counted without it. Ask the
leader (any replica's status names it). A replica that was removed and comes
back must start with an empty --raft-dir and --join.
` + adminHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.callWith("POST", "/v1/operator/raft/remove-peer", api.RemovePeerRequest{Peer: args[0]}, nil); err != nil {
				return fmt.Errorf("removing raft peer %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %s from the cluster.\n", args[0])
			return nil
		},
	}
	a.register(cmd)
	return cmd
}

func newSnapshotSaveCmd() *cobra.Command {
	var a adminFlags
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save the replicated state (the CA, sealed, and spent join tokens) to FILE",
		Long: `Save the replicated state to FILE (mode 0600): the CA's roots and keys, sealed
with the state key (restoring needs the same --state-key-file), and the spent
join tokens. Asked of the leader, it holds every write acknowledged before.
FILE "-" is standard output (the message goes to standard error), for a
controller in a container without a shell:

  kubectl -n weft-system exec weft-controller-0 -- \
    weft operator snapshot save - --data-dir /var/lib/weft/data > backup.snap
` + adminHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var snap api.Snapshot
			if err := a.call("GET", "/v1/operator/snapshot", &snap); err != nil {
				return fmt.Errorf("saving a snapshot: %w", err)
			}
			if args[0] == "-" {
				if _, err := cmd.OutOrStdout().Write(snap.Data); err != nil {
					return fmt.Errorf("writing the snapshot to standard output: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Saved the replicated state to standard output (%d bytes).\n", len(snap.Data))
				return nil
			}
			if err := os.WriteFile(args[0], snap.Data, 0o600); err != nil {
				return fmt.Errorf("writing the snapshot: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Saved the replicated state to %s (%d bytes).\n", args[0], len(snap.Data))
			return nil
		},
	}
	a.register(cmd)
	return cmd
}

func newSnapshotRestoreCmd() *cobra.Command {
	var a adminFlags
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the replicated state with a saved one, on every replica",
		Long: `Replace the replicated state with FILE, as snapshot save wrote it, on every
replica. Ask the leader. The cluster must use the state key the snapshot was
sealed with. Every replica takes the snapshot's CA (sidecars get its bundle);
join tokens spent after the snapshot was saved become usable again until they
expire (an hour at most), so restore into a fresh cluster, or wait an hour.
FILE "-" is standard input:

  kubectl -n weft-system exec -i weft-controller-0 -- \
    weft operator snapshot restore - --data-dir /var/lib/weft/data < backup.snap
` + adminHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[0] == "-" {
				b, err = inputlimit.Read(cmd.InOrStdin(), "standard input", 96<<20)
			} else {
				b, err = inputlimit.ReadFile(args[0], 96<<20)
			}
			if err != nil {
				return fmt.Errorf("reading the snapshot: %w", err)
			}
			if err := a.callWith("PUT", "/v1/operator/snapshot", api.Snapshot{Data: b}, nil); err != nil {
				return fmt.Errorf("restoring the snapshot: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored the replicated state from %s.\n", args[0])
			return nil
		},
	}
	a.register(cmd)
	return cmd
}
