package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// StatsSource is what GET /v1/stats reads: the golden signals the
// sidecars reported (core/telemetry.Collector implements it).
type StatsSource interface {
	// Stats returns every figure over the last window.
	Stats(window time.Duration) StatsReport
	// Window is the longest window it keeps.
	Window() time.Duration
}

// DefaultStatsWindow is the window of GET /v1/stats without ?window=.
const DefaultStatsWindow = time.Minute

// routeStats adds GET /v1/stats (when o.Stats is set) and GET /metrics
// (when o.Metrics is set) to mux.
func routeStats(mux *http.ServeMux, o Options) {
	if o.Stats != nil {
		mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
			window, err := ParseStatsWindow(r.URL.Query().Get("window"), o.Stats.Window())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			writeJSON(w, o.Stats.Stats(window))
		})
	}
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
}

// ParseStatsWindow reads a window ("1m", "30s"; "" is
// DefaultStatsWindow): at least 10 seconds, at most longest.
func ParseStatsWindow(s string, longest time.Duration) (time.Duration, error) {
	if s == "" {
		return min(DefaultStatsWindow, longest), nil
	}
	if len(s) > 32 {
		return 0, fmt.Errorf("window %.32q...: too long; give a duration such as 1m or 30s", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("window %q: %w; give a duration such as 1m or 30s", s, err)
	}
	if d < 10*time.Second || d > longest {
		return 0, fmt.Errorf("window %s: out of range; give one from 10s to %s (what the controller keeps)", d, longest)
	}
	return d, nil
}

// Stats asks GET /v1/stats for the figures over window (0: the
// controller's default, a minute).
func (c *Client) Stats(ctx context.Context, window time.Duration) (StatsReport, error) {
	path := "/v1/stats"
	if window > 0 {
		path += "?window=" + url.QueryEscape(window.String())
	}
	var out StatsReport
	err := c.Call(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
