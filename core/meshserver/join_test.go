package meshserver

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/ca"
	"github.com/weftmesh/weft/core/meshapi"
)

// startWithSpentFile is start with the controller's durable spent-token
// store in dir.
func startWithSpentFile(t *testing.T, dir string) *harness {
	t.Helper()
	c, err := ca.LoadOrCreate(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	spent, err := ca.OpenSpentFile(filepath.Join(dir, "spent-join-tokens"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spent.Close() })
	return serve(t, c, ca.NewJoinVerifierWith(c.JoinSecret(), spent))
}

// A join that fails after the token checks out (here: a CSR that is not
// one) does not spend the token; the join that succeeds does, and the
// token is refused after it, also by a new server on the same data
// directory (a restarted controller).
func TestJoinSpendsOnlyOnSuccess(t *testing.T) {
	dir := t.TempDir()
	h := startWithSpentFile(t, dir)
	h.addInstance("api-0", "api")
	c := h.dial(t, nil)
	tok := h.token(t, "api-0", "api")

	for name, csr := range map[string][]byte{"garbage": []byte("not a CSR"), "empty": nil} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Join(ctx, &meshapi.JoinRequest{InstanceId: "api-0", JoinToken: tok, CsrDer: csr})
		cancel()
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("join with a %s CSR: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := join(t, c, "api-0", tok); err != nil {
		t.Fatalf("join after failed joins: %v (a failed join spent the token)", err)
	}
	_, err := join(t, c, "api-0", tok)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second join with the token: %v, want Unauthenticated, already used", err)
	}

	// The same data directory after a restart.
	h2 := startWithSpentFile(t, dir)
	h2.addInstance("api-0", "api")
	_, err = join(t, h2.dial(t, nil), "api-0", tok)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("join with the token after a restart: %v, want Unauthenticated, already used", err)
	}
}

// Concurrent joins with one token: exactly one gets a certificate.
func TestJoinConcurrentOneToken(t *testing.T) {
	h := startWithSpentFile(t, t.TempDir())
	h.addInstance("api-0", "api")
	c := h.dial(t, nil)
	tok := h.token(t, "api-0", "api")
	_, csr := newCSR(t)

	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, errs[i] = c.Join(ctx, &meshapi.JoinRequest{InstanceId: "api-0", JoinToken: tok, CsrDer: csr})
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "already used"):
			t.Errorf("a losing join: %v, want Unauthenticated, already used", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent joins with one token succeeded, want exactly 1", won, n)
	}
}
