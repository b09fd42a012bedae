package local

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"time"
)

// Check statuses of an instance.
const (
	checkNone    = ""        // no result yet: the app is not running, or not probed yet
	checkPassing = "passing" // the last probe passed
	checkFailing = "failing" // the last probe failed
)

// maxCheckOutput bounds what a check keeps of a failure's message.
const maxCheckOutput = 512

// checkResult is the outcome of an instance's last probe.
type checkResult struct {
	Status string
	Output string // why it failed
}

// checkRun is the probing goroutine of one instance's check. Replaced,
// never changed: a new spec (check, address, port) gets a new run.
type checkRun struct {
	spec instanceSpec
	stop chan struct{}
	done chan struct{}

	result checkResult // guarded by runner.mu
}

func sameCheck(a, b instanceSpec) bool {
	return reflect.DeepEqual(a.Check, b.Check) && a.Address == b.Address && a.Port == b.Port
}

// startCheckLocked starts the check of in, if its spec declares one.
func (r *runner) startCheckLocked(in *instance, spec instanceSpec) {
	if spec.Check == nil {
		in.check = nil
		return
	}
	c := &checkRun{spec: spec, stop: make(chan struct{}), done: make(chan struct{})}
	in.check = c
	go r.runCheck(in, c)
}

// stopCheck stops a check run (nil: none).
func stopCheck(c *checkRun) {
	if c != nil {
		close(c.stop)
	}
}

// runCheck probes the app of in every interval while it runs; while it
// does not run, the result is none.
func (r *runner) runCheck(in *instance, c *checkRun) {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel() // a probe under way ends at once
		case <-ctx.Done():
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		running := in.app.running
		r.mu.Unlock()
		res := checkResult{}
		if running {
			res = r.probe(ctx, c.spec)
		}
		r.setCheck(in, c, res)
		t.Reset(c.spec.Check.Interval)
	}
}

// setCheck records a result and wakes the watchers when the status moved.
func (r *runner) setCheck(in *instance, c *checkRun, res checkResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || in.check != c {
		return
	}
	old := c.result
	c.result = res
	if old.Status != res.Status {
		switch {
		case res.Status == checkFailing && old.Status == checkPassing:
			r.cfg.Log.Warn("check failing: the instance gets no traffic until it passes", "instance", c.spec.ID, "output", res.Output)
		case res.Status == checkFailing: // an app that is starting
			r.cfg.Log.Debug("check not passing yet", "instance", c.spec.ID, "output", res.Output)
		case res.Status == checkPassing && old.Status == checkFailing:
			r.cfg.Log.Info("check passing again", "instance", c.spec.ID)
		}
		r.changedLocked() // the state file carries the status to watchers (option watch)
	}
}

// probe runs one check against the app. With the guard, the connection
// is made with the group of the instance's sidecar, the only other group
// the guard lets reach the app's port.
func (r *runner) probe(ctx context.Context, spec instanceSpec) checkResult {
	chk := spec.Check
	gid := -1
	if r.cfg.Cred != nil {
		if c, err := r.cfg.Cred(spec, "proxy"); err == nil && c != nil {
			gid = int(c.Gid)
		}
	}
	addr := net.JoinHostPort(spec.Address, strconv.Itoa(spec.Port))
	ctx, cancel := context.WithTimeout(ctx, chk.Timeout)
	defer cancel()
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return checkDial(ctx, gid, addr) }
	fail := func(format string, args ...any) checkResult {
		return checkResult{Status: checkFailing, Output: truncate(fmt.Sprintf(format, args...), maxCheckOutput)}
	}
	if chk.TCP {
		conn, err := dial(ctx, "tcp", addr)
		if err != nil {
			return fail("connecting to %s: %v", addr, err)
		}
		conn.Close()
		return checkResult{Status: checkPassing}
	}
	client := &http.Client{
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
		// A redirect is an answer, not a pass: the path is the app's own.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+chk.HTTP, nil)
	if err != nil {
		return fail("building GET %s: %v", chk.HTTP, err)
	}
	req.Header.Set("User-Agent", "weft-local-check")
	resp, err := client.Do(req)
	if err != nil {
		return fail("GET %s on %s: %v", chk.HTTP, addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxCheckOutput))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail("GET %s on %s answered %s: %s", chk.HTTP, addr, resp.Status, body)
	}
	return checkResult{Status: checkPassing}
}

// checkDial connects to addr with a socket created under group gid (-1:
// the adapter's own): see dialAsGroup.
func checkDial(ctx context.Context, gid int, addr string) (net.Conn, error) {
	if gid < 0 {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	return dialAsGroup(ctx, gid, addr)
}
