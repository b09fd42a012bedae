package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
)

// topRow is one method and path of `weft top`.
type topRow struct {
	Method, Path      string
	Count, Success    int
	Best, Worst, Last float64 // latency, ms
	Denied            int
	lastSeen          time.Time
}

// topTable counts the requests of a tap by method and path.
type topTable struct {
	mu   sync.Mutex
	rows map[[2]string]*topRow
}

func (t *topTable) add(ev api.TapEvent) {
	if ev.Type != "request" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rows == nil {
		t.rows = map[[2]string]*topRow{}
	}
	k := [2]string{ev.Method, ev.Path}
	r := t.rows[k]
	if r == nil {
		if len(t.rows) >= maxTopRows {
			return // bounded: a client sending random paths cannot grow it
		}
		r = &topRow{Method: ev.Method, Path: ev.Path, Best: ev.LatencyMs, Worst: ev.LatencyMs}
		t.rows[k] = r
	}
	r.Count++
	// Success as operators read it: an answer below 500 that the mesh did
	// not refuse.
	if ev.Status > 0 && ev.Status < 500 && ev.Denied == "" {
		r.Success++
	}
	if ev.Denied != "" {
		r.Denied++
	}
	r.Best, r.Worst, r.Last = min(r.Best, ev.LatencyMs), max(r.Worst, ev.LatencyMs), ev.LatencyMs
	r.lastSeen = ev.Time
}

// maxTopRows bounds the paths `weft top` keeps.
const maxTopRows = 10000

// sorted is the rows, busiest first.
func (t *topTable) sorted() []topRow {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]topRow, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

func (t *topTable) write(w io.Writer, limit int) {
	rows := t.sorted()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tPATH\tCOUNT\tSUCCESS\tDENIED\tBEST\tWORST\tLAST")
	for i, r := range rows {
		if limit > 0 && i == limit {
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", r.Method, strconv.Quote(r.Path)[1:len(strconv.Quote(r.Path))-1], r.Count,
			fmt.Sprintf("%.1f%%", 100*float64(r.Success)/float64(r.Count)), r.Denied, fmtMs(r.Best), fmtMs(r.Worst), fmtMs(r.Last))
	}
	_ = tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no requests yet)")
	}
}

func newTopCmd() *cobra.Command {
	var a adminFlags
	var f tapFlags
	var once bool
	var rows int
	cmd := &cobra.Command{
		Use:   "top SERVICE",
		Short: "Show the busiest paths of a service, live, from its sidecars' tap",
		Long: `top taps SERVICE (like weft tap, with the same filters; by default the
requests it receives) and shows its busiest paths: per method and path, the
requests seen, the share that succeeded (an answer below 500 the mesh did
not refuse), those denied by authorization, and the best, worst and last
latency. On a terminal the table is redrawn in place every second until the
tap ends or Ctrl-C; with --once it prints one table when --duration has
passed (5s unless given), for scripts.

Counts are of the requests the tap saw: each sidecar sends at most
--max-rps events a second, and top says how many were dropped.
` + adminHelp,
		Example: `  weft top api
  weft top api --once --duration 10s --max-rps 1000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if once && !cmd.Flags().Changed("duration") {
				f.duration = 5 * time.Second
			}
			if f.direction == "" && f.to == "" {
				f.direction = "inbound" // each request once, at the callee
			}
			out := cmd.OutOrStdout()
			var t topTable
			live := !once && isTerminal(out)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if live {
				wg.Go(func() {
					tick := time.NewTicker(time.Second)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear
							fmt.Fprintf(out, "weft top %s  %s\n\n", args[0], time.Now().Format("15:04:05"))
							t.write(out, rows)
						}
					}
				})
			}
			var dropped uint64
			err := runTap(&a, &f, args[0], cmd.ErrOrStderr(), func(ev api.TapEvent) error {
				if ev.Type == "end" {
					dropped = ev.Dropped
				}
				t.add(ev)
				return nil
			})
			close(stop)
			wg.Wait()
			if err != nil {
				return err
			}
			if live {
				fmt.Fprint(out, "\x1b[H\x1b[2J")
			}
			t.write(out, rows)
			if dropped > 0 {
				fmt.Fprintf(out, "(%d requests not counted: over --max-rps or a slow reader)\n", dropped)
			}
			return nil
		},
	}
	a.register(cmd)
	f.register(cmd, time.Minute)
	cmd.Flags().BoolVar(&once, "once", false, "print one table when --duration has passed (default 5s), and exit")
	cmd.Flags().IntVar(&rows, "rows", 20, "show at most this many paths (0: all)")
	return cmd
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
