package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/nomad/api"
	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/adapters/nomad/jobspec"
	policyhcl "github.com/weftmesh/weft/hcl"
)

// newNomadCmd is `weft nomad`: job files with the weft stanza.
func newNomadCmd() *cobra.Command {
	var def jobspec.Defaults
	var noColor bool
	var policyDir string
	var nodeProxy bool
	var np jobspec.NodeProxy
	cmd := &cobra.Command{
		Use:   "nomad",
		Short: "Expand and run Nomad job files that use the weft stanza",
		Long: `A weft block inside a Nomad job's group describes the group's place in the
mesh: its service, its app port, its upstreams and its sidecar. render
expands it into the sidecar task, ports and service blocks and prints the
plain job; run submits that job to Nomad, like nomad job run. A job without
a weft block passes through unchanged. The stanza is described in
adapters/nomad/jobspec.

A stanza with proxy_mode = "node" (or, with --policy, a service the
policy puts in node mode) renders a group without a sidecar task, whose
service carries the tag weft_proxy_mode=node: the node proxy of each
allocation's node serves it. --node-proxy renders (or runs) that node
proxy's system job instead of a job file (docs/deployment-models.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	fl := cmd.PersistentFlags()
	fl.StringArrayVar(&def.Controllers, "controller", nil, "default controller address host:port for sidecars (repeatable); a stanza's sidecar.controller wins")
	fl.StringVar(&def.TrustBundle, "trust-bundle", "", "default path of the controller CA's root certificate on the client nodes")
	fl.StringVar(&def.ProxyCommand, "proxy-command", "weft-proxy", "default command of the sidecar task (a path on the client nodes)")
	fl.BoolVar(&noColor, "no-color", false, "never color the diagnostics")
	fl.StringVar(&policyDir, "policy", "", "policy directory (or file): each stanza's service is rendered in the proxy mode the policy gives it (proxy_mode, default_proxy_mode), and a stanza's own proxy_mode must agree")
	fl.BoolVar(&nodeProxy, "node-proxy", false, "render the node proxy's system job (no JOBFILE): one weft-proxy per client node serving its node-mode instances")
	fl.StringVar(&np.Job, "node-proxy-job", "weft-node-proxy", "with --node-proxy: the system job's name")
	fl.StringArrayVar(&np.Datacenters, "datacenter", nil, "with --node-proxy: a datacenter of the system job (repeatable; default Nomad's)")
	fl.DurationVar(&np.DiscoverInterval, "discover-interval", 0, "with --node-proxy: how often the node proxy asks the controller which instances to serve (0: weft-proxy's default, 2s)")

	render := func(cmd *cobra.Command, args []string) ([]byte, error) {
		if nodeProxy {
			if len(args) > 0 {
				return nil, fmt.Errorf("--node-proxy renders the node proxy's own system job: give no job file (got %s)", args[0])
			}
			np.Command, np.Controllers, np.TrustBundle = def.ProxyCommand, def.Controllers, def.TrustBundle
			return jobspec.NodeProxyJob(np)
		}
		if len(args) != 1 {
			return nil, fmt.Errorf("give one job file (or --node-proxy for the node proxy's system job)")
		}
		path := args[0]
		if policyDir != "" {
			p, diags, files := policyhcl.Load(policyDir)
			if diags.HasErrors() || p == nil {
				stderr := cmd.ErrOrStderr()
				_ = policyhcl.WriteDiagnostics(stderr, diags, files, !noColor && colorTerminal(stderr))
				return nil, fmt.Errorf("reading the policy in %s: %s", policyDir, countErrors(diags))
			}
			def.ProxyMode = func(service string) string {
				m, _ := p.ProxyModeOf(service)
				return string(m)
			}
		}
		src, diags := jobspec.ReadFile(path)
		var out []byte
		var file *hcl.File
		if !diags.HasErrors() {
			out, file, diags = jobspec.Render(path, src, def)
		}
		if len(diags) > 0 {
			stderr := cmd.ErrOrStderr()
			if err := policyhcl.WriteDiagnostics(stderr, diags, map[string]*hcl.File{path: file}, !noColor && colorTerminal(stderr)); err != nil {
				return nil, err
			}
			fmt.Fprintln(stderr)
		}
		if diags.HasErrors() {
			return nil, fmt.Errorf("job file %s is invalid: %s", path, countErrors(diags))
		}
		return out, nil
	}

	cmd.AddCommand(&cobra.Command{
		Use:   "render JOBFILE | --node-proxy",
		Short: "Print the plain Nomad job a job file with weft blocks stands for, or the node proxy's system job",
		Example: `  weft nomad render --controller 10.0.0.5:7400 --trust-bundle /etc/weft/ca.crt api.nomad.hcl
  weft nomad render api.nomad.hcl | nomad job run -
  weft nomad render --policy policy/ api.nomad.hcl
  weft nomad render --node-proxy --controller 10.0.0.5:7410 --trust-bundle /etc/weft/ca.crt`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := render(cmd, args)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})

	var detach bool
	var vars []string
	run := &cobra.Command{
		Use:   "run JOBFILE | --node-proxy",
		Short: "Expand a job file's weft blocks and submit the job to Nomad",
		Long: `run renders the job file (see render), has Nomad parse the result, and
registers the job, like nomad job run. Nomad's address and token come from
NOMAD_ADDR (default http://127.0.0.1:4646) and NOMAD_TOKEN. Unless
--detach, it waits (up to a minute) for the evaluation and reports
placement failures.`,
		Example: `  NOMAD_TOKEN=... weft nomad run examples/nomad/api.nomad.hcl
  NOMAD_TOKEN=... weft nomad run --node-proxy --controller 10.0.0.5:7410 --trust-bundle /etc/weft/ca.crt`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := render(cmd, args)
			if err != nil {
				return err
			}
			varsHCL, err := jobVariables(vars)
			if err != nil {
				return err
			}
			name := "the node proxy's job"
			if len(args) == 1 {
				name = filepath.Base(args[0])
			}
			return submitJob(cmd.Context(), cmd.OutOrStdout(), name, out, varsHCL, detach)
		},
	}
	run.Flags().BoolVar(&detach, "detach", false, "return once the job is registered, without waiting for its evaluation")
	run.Flags().StringArrayVar(&vars, "var", nil, "a job variable, KEY=VALUE (repeatable), as nomad job run -var")
	cmd.AddCommand(run)
	return cmd
}

// submitJob has Nomad parse the rendered job and registers it.
func submitJob(ctx context.Context, stdout io.Writer, name string, jobHCL []byte, varsHCL string, detach bool) error {
	c, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return fmt.Errorf("making a Nomad client: %w", err)
	}
	addr := c.Address()
	job, err := c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(jobHCL), Variables: varsHCL, Canonicalize: true})
	if err != nil {
		return fmt.Errorf("Nomad at %s could not parse the rendered %s (see it with weft nomad render): %w", addr, name, err)
	}
	resp, _, err := c.Jobs().Register(job, nil)
	if err != nil {
		return fmt.Errorf("registering job %s with Nomad at %s: %w (is NOMAD_TOKEN a token with submit-job?)", *job.ID, addr, err)
	}
	fmt.Fprintf(stdout, "Job %q registered with Nomad at %s; evaluation %s\n", *job.ID, addr, resp.EvalID)
	if detach || resp.EvalID == "" {
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ev, _, err := c.Evaluations().Info(resp.EvalID, (&api.QueryOptions{Namespace: *job.Namespace, WaitTime: 5 * time.Second}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("following evaluation %s: %w", resp.EvalID, err)
		}
		switch ev.Status {
		case "complete":
			if len(ev.FailedTGAllocs) > 0 {
				for tg, m := range ev.FailedTGAllocs {
					fmt.Fprintf(stdout, "Group %q could not be placed: %d node(s) filtered, %d exhausted %v\n", tg, m.NodesFiltered, m.NodesExhausted, m.DimensionExhausted)
				}
				return errors.New("the job was registered but not every group could be placed")
			}
			fmt.Fprintf(stdout, "Evaluation %s complete: allocations placed\n", resp.EvalID)
			return waitDeployment(ctx, c, stdout, job)
		case "failed", "canceled":
			return fmt.Errorf("evaluation %s %s: %s", resp.EvalID, ev.Status, ev.StatusDescription)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "Evaluation %s still pending after a minute; follow it with nomad eval status %s\n", resp.EvalID, resp.EvalID)
	return nil
}

// waitDeployment follows the deployment of the job's new version, as
// nomad job run does, until Nomad finds its allocations healthy (the nomad
// adapter routes to them from then on), for up to five minutes.
func waitDeployment(ctx context.Context, c *api.Client, stdout io.Writer, job *api.Job) error {
	if job.Type != nil && *job.Type != "service" {
		return nil
	}
	q := &api.QueryOptions{Namespace: *job.Namespace}
	j, _, err := c.Jobs().Info(*job.ID, q)
	if err != nil {
		return fmt.Errorf("reading job %s back: %w", *job.ID, err)
	}
	start := time.Now()
	deadline := start.Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		d, _, err := c.Jobs().LatestDeployment(*job.ID, q)
		if err != nil {
			return fmt.Errorf("following job %s's deployment: %w", *job.ID, err)
		}
		switch {
		case d != nil && d.JobVersion == *j.Version && d.Status == "successful":
			fmt.Fprintf(stdout, "Deployment %s successful: every allocation healthy\n", d.ID)
			return nil
		case d != nil && d.JobVersion == *j.Version && (d.Status == "failed" || d.Status == "cancelled"):
			return fmt.Errorf("deployment %s of job %s %s: %s", d.ID, *job.ID, d.Status, d.StatusDescription)
		case (d == nil || d.JobVersion < *j.Version) && time.Since(start) > 10*time.Second:
			return nil // Nomad made no deployment for this version
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "Job %s's deployment is still running after five minutes; follow it with nomad job status %s\n", *job.ID, *job.ID)
	return nil
}

// jobVariables turns --var KEY=VALUE flags into the variables file Nomad's
// parser takes.
func jobVariables(vars []string) (string, error) {
	var b strings.Builder
	for _, v := range vars {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return "", fmt.Errorf("--var %q: want KEY=VALUE, for example weft_bin=/usr/local/bin", v)
		}
		fmt.Fprintf(&b, "%s = %s\n", k, strconv.Quote(val))
	}
	return b.String(), nil
}
