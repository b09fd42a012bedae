package harness

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// PollInterval is how often Eventually asks again.
const PollInterval = 50 * time.Millisecond

// Poll calls f every interval until it returns nil, ctx ends or timeout
// passes; it returns f's last error then (after the timeout, wrapped with
// how long it waited). f runs at least once.
func Poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(interval):
		}
	}
}

// Eventually polls f (every PollInterval) until it returns nil, and
// returns how long that took. It fails the test, naming what it waited
// for and f's last error, when timeout passes first. Use it on a
// readiness signal (a status endpoint, a file, a log line), never to wait
// out a delay.
func Eventually(t testing.TB, what string, timeout time.Duration, f func() error) time.Duration {
	t.Helper()
	t0 := time.Now()
	if err := Poll(context.Background(), timeout, PollInterval, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return time.Since(t0)
}
