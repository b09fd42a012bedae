package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
)

func newStatCmd() *cobra.Command {
	var a adminFlags
	var (
		asJSON, edges, routes bool
		window                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stat [SERVICE | CALLER->CALLEE]",
		Short: "Show the golden signals of services or edges: success rate, requests per second, latency",
		Long: `Show the golden signals the sidecars reported to the controller over the last
--window: per service (what its instances served), or per edge from a calling
service to a called one (--edges, or CALLER->CALLEE), with --routes the
caller's view of each route and subset of an edge.

MESHED is the instances whose sidecars reported in the window, out of the
instances the adapters report. SUCCESS is the share of requests that did not
fail (HTTP status below 500, not refused by an intention, gRPC OK or a
client's error). Latencies are estimated from histograms with fixed buckets
(0.5 ms doubling to 32.8 s), so they are exact to within one bucket. Sidecars
report every 10 s by default (weft-proxy --report-interval): the newest
seconds of traffic may not be in yet.
` + adminHelp,
		Example: `  weft stat --data-dir .weft
  weft stat api --window 5m
  weft stat --edges
  weft stat 'web->api' --routes
  weft stat --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel := ""
			if len(args) == 1 {
				sel = args[0]
			}
			path := "/v1/stats"
			if window > 0 {
				path += "?window=" + url.QueryEscape(window.String())
			}
			var rep api.StatsReport
			if err := a.call("GET", path, &rep); err != nil {
				return err
			}
			caller, callee, isEdge := strings.Cut(sel, "->")
			if isEdge && (caller == "" || callee == "") {
				return fmt.Errorf("edge %q: want CALLER->CALLEE, e.g. web->api", sel)
			}
			rep = selectStats(rep, sel, strings.TrimSpace(caller), strings.TrimSpace(callee), isEdge)
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, rep)
			}
			if isEdge || edges || routes {
				return writeEdgeStats(out, rep, routes)
			}
			var st api.StatusReport
			total := map[string]int{}
			if err := a.call("GET", "/v1/status", &st); err == nil {
				for _, in := range st.Instances {
					total[in.Service]++
				}
			}
			return writeServiceStats(out, rep, total)
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the controller's answer (GET /v1/stats) as JSON")
	cmd.Flags().BoolVar(&edges, "edges", false, "show edges (caller -> callee) instead of services")
	cmd.Flags().BoolVar(&routes, "routes", false, "show each route and subset of the edges (the callers' view)")
	cmd.Flags().DurationVar(&window, "window", 0, "how far back to look, 10s to 10m (default 1m)")
	return cmd
}

// selectStats keeps what the command's argument names: a service (its
// row, and the edges to and from it), or one edge.
func selectStats(rep api.StatsReport, sel, caller, callee string, isEdge bool) api.StatsReport {
	if sel == "" {
		return rep
	}
	var svcs []api.ServiceStats
	for _, s := range rep.Services {
		if !isEdge && s.Service == sel {
			svcs = append(svcs, s)
		}
	}
	var es []api.EdgeStats
	for _, e := range rep.Edges {
		if (isEdge && e.Caller == caller && e.Callee == callee) || (!isEdge && (e.Caller == sel || e.Callee == sel)) {
			es = append(es, e)
		}
	}
	var ins []api.InstanceStats
	for _, in := range rep.Instances {
		if !isEdge && in.Service == sel {
			ins = append(ins, in)
		}
	}
	rep.Services, rep.Edges, rep.Instances = nonNil(svcs), nonNil(es), nonNil(ins)
	return rep
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeServiceStats(w io.Writer, rep api.StatsReport, total map[string]int) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMESHED\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99\tDENIED")
	for _, s := range rep.Services {
		meshed := fmt.Sprintf("%d", s.Instances)
		if n := total[s.Service]; n > 0 {
			meshed = fmt.Sprintf("%d/%d", s.Instances, n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", qualified(s.Namespace, s.Service), meshed, goldenCells(s.Golden))
	}
	if len(rep.Services) == 0 {
		fmt.Fprintf(tw, "no traffic reported in the last %s\n", time.Duration(rep.WindowSeconds*float64(time.Second)))
	}
	return tw.Flush()
}

func writeEdgeStats(w io.Writer, rep api.StatsReport, routes bool) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if routes {
		fmt.Fprintln(tw, "CALLER\tCALLEE\tROUTE\tSUBSET\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99\tDENIED")
	} else {
		fmt.Fprintln(tw, "CALLER\tCALLEE\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99\tDENIED")
	}
	for _, e := range rep.Edges {
		from, to := qualified(e.CallerNamespace, e.Caller), qualified(e.CalleeNamespace, e.Callee)
		if !routes {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", from, to, goldenCells(e.Golden))
			continue
		}
		for _, r := range e.Routes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", from, to, orDash(r.Route), orDash(r.Subset), goldenCells(r.Golden))
		}
	}
	if len(rep.Edges) == 0 {
		fmt.Fprintf(tw, "no traffic reported in the last %s\n", time.Duration(rep.WindowSeconds*float64(time.Second)))
	}
	return tw.Flush()
}

// goldenCells are the SUCCESS, RPS, LATENCY_P50/P95/P99 and DENIED
// cells of a row.
func goldenCells(g api.Golden) string {
	if g.Requests == 0 {
		return fmt.Sprintf("-\t0\t-\t-\t-\t%d", g.Denied)
	}
	return fmt.Sprintf("%.2f%%\t%.1f\t%s\t%s\t%s\t%d", 100*g.SuccessRate, g.RPS, ms(g.P50Ms), ms(g.P95Ms), ms(g.P99Ms), g.Denied)
}

func ms(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

func qualified(ns, svc string) string {
	if ns == "" || ns == "default" {
		return svc
	}
	return ns + "/" + svc
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
