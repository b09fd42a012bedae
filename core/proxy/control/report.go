package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/weftmesh/weft/core/meshapi"
)

// reportStream is the open Report stream, if any.
type reportStream struct {
	mu     sync.Mutex // one report at a time
	addr   string
	s      meshapi.Mesh_ReportClient
	cancel context.CancelFunc
}

// SendStats sends one golden-signal report on the Report stream to the
// controller the config stream uses (on the same mTLS connection),
// opening the stream when there is none. It returns once the report is
// handed to the connection, or with ctx's error when it could not be in
// time: the stream is then closed, so that nothing queues behind a slow
// controller, and the next report opens another. The proxy
// (core/proxy.RunReports) keeps the counts of a report that failed for
// the next one.
func (c *Client) SendStats(ctx context.Context, r *meshapi.StatsReport) error {
	rs := &c.reports
	rs.mu.Lock()
	defer rs.mu.Unlock()
	t := c.controller(ctx)
	addr := t.Addr
	if rs.s != nil && rs.addr != addr {
		rs.close()
	}
	if rs.s == nil {
		cc, err := c.conn(t)
		if err != nil {
			return fmt.Errorf("connecting to controller %s: %w", addr, err)
		}
		// The stream outlives this call; opening it (which waits for
		// the connection) is bounded by ctx.
		sctx, cancel := context.WithCancel(context.Background())
		stop := context.AfterFunc(ctx, cancel)
		s, err := meshapi.NewMeshClient(cc).Report(sctx)
		if !stop() && err == nil {
			err = ctx.Err()
		}
		if err != nil {
			cancel()
			return fmt.Errorf("opening the report stream to controller %s: %w", addr, err)
		}
		rs.addr, rs.s, rs.cancel = addr, s, cancel
	}
	// Send blocks while the controller does not read (flow control):
	// past ctx, the stream is cancelled, which ends the Send.
	stop := context.AfterFunc(ctx, rs.cancel)
	err := rs.s.Send(r)
	stop()
	if err == nil && ctx.Err() == nil {
		return nil
	}
	if err == nil {
		err = ctx.Err()
	}
	if errors.Is(err, io.EOF) {
		// The controller ended the stream: its status says why.
		_, err = rs.s.CloseAndRecv()
	}
	rs.close()
	return fmt.Errorf("sending a report to controller %s: %w", addr, err)
}

func (rs *reportStream) close() {
	if rs.cancel != nil {
		rs.cancel()
	}
	rs.s, rs.cancel, rs.addr = nil, nil, ""
}

// Budgets sends one report of the sidecar's global rate limits to the
// controller the config stream uses (on the same mTLS connection) and
// returns the shares it grants (core/proxy.RunBudgets).
func (c *Client) Budgets(ctx context.Context, r *meshapi.BudgetReport) (*meshapi.BudgetGrants, error) {
	t := c.controller(ctx)
	addr := t.Addr
	cc, err := c.conn(t)
	if err != nil {
		return nil, fmt.Errorf("connecting to controller %s: %w", addr, err)
	}
	g, err := meshapi.NewMeshClient(cc).Budgets(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("reporting global rate limits to controller %s: %w", addr, err)
	}
	return g, nil
}
