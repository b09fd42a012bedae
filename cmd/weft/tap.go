package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
)

// tapFlags are the filters `weft tap` and `weft top` share.
type tapFlags struct {
	to, from, path, method, direction string
	maxRPS                            int
	duration                          time.Duration
}

func (f *tapFlags) register(cmd *cobra.Command, defaultDuration time.Duration) {
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "", "only requests SERVICE sends to this upstream service")
	fl.StringVar(&f.from, "from", "", "only requests SERVICE receives from this calling service (svc or namespace/svc)")
	fl.StringVar(&f.path, "path", "", "only requests whose canonical path begins with this prefix")
	fl.StringVar(&f.method, "method", "", "only requests with this method (GET, POST...)")
	fl.StringVar(&f.direction, "direction", "", "inbound (requests SERVICE receives), outbound (requests it sends), or both (the default)")
	fl.IntVar(&f.maxRPS, "max-rps", api.DefaultTapRPS, "at most this many events a second from each sidecar (the rest are dropped and counted)")
	fl.DurationVar(&f.duration, "duration", defaultDuration, "how long to tap (at most 10m)")
}

func (f *tapFlags) params(service string) map[string]string {
	return map[string]string{
		"service": service, "to": f.to, "from": f.from, "path": f.path, "method": f.method, "direction": f.direction,
		"max_rps": strconv.Itoa(f.maxRPS), "duration": f.duration.String(),
	}
}

// runTap streams the tap of service into each, until it ends, Ctrl-C, or
// each fails. Sidecars that join are announced on stderr.
func runTap(a *adminFlags, f *tapFlags, service string, stderr io.Writer, each func(api.TapEvent) error) error {
	cfg, err := a.resolve()
	if err != nil {
		return err
	}
	c, err := api.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(stderr, "tapping %s for %s (Ctrl-C to stop)\n", service, f.duration)
	err = c.Tap(ctx, f.params(service), func(ev api.TapEvent) error {
		switch ev.Type {
		case "joined":
			fmt.Fprintf(stderr, "tap started on sidecar %s\n", ev.Instance)
			return nil
		case "end":
			if ev.Dropped > 0 {
				fmt.Fprintf(stderr, "tap ended: %s; %d events dropped (over --max-rps, or a slow reader)\n", ev.Reason, ev.Dropped)
			} else {
				fmt.Fprintf(stderr, "tap ended: %s\n", ev.Reason)
			}
		}
		return each(ev)
	})
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		return fmt.Errorf("%w (is the controller older than this weft? upgrade it)", err)
	case errors.As(err, &se) && se.Code == http.StatusTooManyRequests:
		return fmt.Errorf("%w (the controller runs as many taps as it serves at once)", err)
	}
	return err
}

func newTapCmd() *cobra.Command {
	var a adminFlags
	var f tapFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tap SERVICE",
		Short: "Watch live requests of a service, as its sidecars see them",
		Long: `Watch live requests of SERVICE (svc or namespace/svc) as its sidecars see
them, streamed through the controller: one line per request with its
direction, the sidecar's instance, the caller's SPIFFE identity (inbound: the
one its certificate proved), the route, method, authority and path, status,
latency and bytes. A request refused by authorization shows DENIED and why.

With --from, the caller's sidecars are tapped too, for its side of the same
calls (those that never reached SERVICE show only there). Each sidecar sends
at most --max-rps events a second; the controller runs at most 16 taps at
once, each for at most 10 minutes. Nothing is kept: a tap sees only what
happens while it runs.
` + adminHelp,
		Example: `  weft tap api --data-dir .weft
  weft tap api --from web --path /orders --method POST
  weft tap web --to api --json --duration 30s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			return runTap(&a, &f, args[0], cmd.ErrOrStderr(), func(ev api.TapEvent) error {
				if ev.Type != "request" {
					return nil
				}
				if asJSON {
					return enc.Encode(ev)
				}
				_, err := fmt.Fprintln(out, tapLine(ev))
				return err
			})
		},
	}
	a.register(cmd)
	f.register(cmd, time.Minute)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as a line of JSON (the admin API's GET /v1/tap)")
	return cmd
}

// tapLine is one request, readable:
//
//	15:04:05.123 inbound  api-0  spiffe://weft.local/ns/default/svc/web -> api  GET api.local /hello  200 1.2ms  req=0B rsp=42B
//	15:04:05.123 inbound  api-0  spiffe://weft.local/ns/default/svc/x -> api  GET /admin  DENIED 403 0.1ms  reason="..."
func tapLine(ev api.TapEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-8s %s  %s -> %s", ev.Time.Local().Format("15:04:05.000"), ev.Direction, ev.Instance, orDash(ev.Caller), orDash(ev.Callee))
	if ev.Upstream != "" {
		fmt.Fprintf(&b, " (%s)", ev.Upstream)
	}
	if ev.Route != "" {
		fmt.Fprintf(&b, " route=%s", ev.Route)
	}
	fmt.Fprintf(&b, "  %s %s%s  ", ev.Method, ev.Authority, strconv.Quote(ev.Path)[1:len(strconv.Quote(ev.Path))-1])
	if ev.Denied != "" {
		b.WriteString("DENIED ")
	}
	if ev.Status == 0 {
		b.WriteString("-")
	} else {
		b.WriteString(strconv.Itoa(ev.Status))
	}
	if ev.GRPCStatus != "" {
		fmt.Fprintf(&b, " grpc=%s", ev.GRPCStatus)
	}
	fmt.Fprintf(&b, " %s", fmtMs(ev.LatencyMs))
	if ev.RequestBytes >= 0 {
		fmt.Fprintf(&b, "  req=%dB", ev.RequestBytes)
	}
	fmt.Fprintf(&b, " rsp=%dB", ev.ResponseBytes)
	if ev.Tries > 1 {
		fmt.Fprintf(&b, " tries=%d", ev.Tries)
	}
	if ev.Denied != "" {
		fmt.Fprintf(&b, "  reason=%s", strconv.Quote(ev.Denied))
	}
	return b.String()
}

func fmtMs(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
