package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// globalLimit is the limit the test holds the api service to, in
// requests a second across all its instances, and offered the load
// it offers (twice the limit).
const (
	globalLimit = 100.0
	offered     = 200.0
	// measureFor is the window admitted rates are measured over: long
	// enough that a slow second on a busy machine moves the rate little.
	measureFor = 10 * time.Second
)

// globalPolicy: loadgen calls api through its sidecar's port 9101,
// consistent hashing on the x-key header (so the test steers each
// stream to one api instance); api's POSTs are under a global limit.
const globalPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}
service "loadgen" {
  protocol = "http"
  binding "local" { name = "loadgen" }
  upstream "api" {
    local_port = 9101
    lb         = "ring_hash"
    hash { header = "x-key" }
  }
}
service "api" {
  protocol = "http"
  binding "local" { name = "api" }
  rate_limit "posts" {
    requests_per_second = 100
    burst               = 10
    scope               = "global"
    match { methods = ["POST"] }
  }
}
intention "loadgen" "api" { action = "allow" }
`

// TestGlobalRateLimit is issue 16's proof of global rate limits: three
// api instances under one limit of 100 requests a second, an uneven
// steady load of 200 a second through all three (60%, 30%, 10%). After
// convergence the admitted rate, measured over 10s, is within 10% of the
// limit; a fourth instance that joins gets a share; with the controller
// killed, every sidecar falls back to a fair share (the limit over four),
// and the admitted rate is what those shares admit of the load; with the
// controller back, the limit converges again.
func TestGlobalRateLimit(t *testing.T) {
	app := filepath.Join(binDir, "weft-demo-app")
	workloads := func(n int) string {
		return harness.Workload("loadgen", app) + harness.Workload("api", app, fmt.Sprintf("instances = %d", n))
	}
	ctl, policyDir := startLocalMesh(t, globalPolicy, workloads(3), "127.0.114.2")
	ctl.WaitFor(t, "the mesh to converge", 90*time.Second, harness.Converged(4))
	s, err := ctl.Status()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(s.Address("loadgen"), "9101") + "/"

	// 1. Three instances, 60/30/10.
	keys := keysOf(t, url, "api-0", "api-1", "api-2")
	l := startConstantLoad(t, url, []loadStream{
		{key: keys["api-0"], instance: "api-0", rate: 0.6 * offered},
		{key: keys["api-1"], instance: "api-1", rate: 0.3 * offered},
		{key: keys["api-2"], instance: "api-2", rate: 0.1 * offered},
	})
	l.waitConverged(t, "three instances", globalLimit)
	got := l.measure(t, measureFor)
	got.check(t, "three instances, after convergence", globalLimit)
	l.stop()

	// 2. A fourth instance joins: it gets a share.
	wl := filepath.Join(filepath.Dir(policyDir), "workloads.hcl")
	harness.ReplaceFile(t, wl, workloads(4))
	ctl.WaitFor(t, "the fourth api instance", 90*time.Second, harness.Converged(5))
	keys = keysOf(t, url, "api-0", "api-1", "api-2", "api-3")
	streams := []loadStream{
		{key: keys["api-0"], instance: "api-0", rate: 0.5 * offered},
		{key: keys["api-1"], instance: "api-1", rate: 0.25 * offered},
		{key: keys["api-2"], instance: "api-2", rate: 0.1 * offered},
		{key: keys["api-3"], instance: "api-3", rate: 0.15 * offered},
	}
	l = startConstantLoad(t, url, streams)
	l.waitConverged(t, "four instances", globalLimit)
	got = l.measure(t, measureFor)
	got.check(t, "four instances, after api-3 joined", globalLimit)
	// Its share follows its demand, 15% of the load: 15/s of 100. A
	// floor-only share (1.25/s) or none would be far below.
	if r := got.admitted["api-3"]; r < 0.5*0.15*globalLimit {
		t.Errorf("the new instance api-3 admitted %.1f/s, want about %.0f/s (15%% of the limit)", r, 0.15*globalLimit)
	}

	// 3. The controller goes away: each sidecar falls back to a fair
	// share, 100/4 = 25/s, within three report intervals.
	ctl.Kill(t)
	killed := time.Now()
	logs := filepath.Join(ctl.DataDir, "adapters", "local", "logs")
	took := harness.Eventually(t, "every api sidecar to enforce a fair share", 30*time.Second, func() error {
		for _, id := range []string{"api-0", "api-1", "api-2", "api-3"} {
			b, err := os.ReadFile(filepath.Join(logs, id+".proxy.log"))
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), "enforcing a fair share") {
				return fmt.Errorf("%s's sidecar has not logged a fair share", id)
			}
		}
		return nil
	})
	t.Logf("every sidecar on a fair share %s after the controller was killed (waited %s)", time.Since(killed).Round(time.Millisecond), took.Round(time.Millisecond))
	// Let the buckets settle on the fair shares: one second of load.
	l.measure(t, time.Second)
	got = l.measure(t, measureFor)
	// What fair shares admit of this load: each instance the lesser of
	// its load and 25/s.
	var want float64
	for _, st := range streams {
		want += math.Min(st.rate, globalLimit/4)
	}
	got.check(t, fmt.Sprintf("controller away, fair shares (%.0f/s of this load)", want), want)
	if got.total > globalLimit*1.1 {
		t.Errorf("with the controller away the service admitted %.1f/s, above the limit %.0f/s", got.total, globalLimit)
	}

	// 4. The controller comes back: the shares follow demand again.
	ctl = ctl.Restart()
	ctl.WaitFor(t, "the sidecars to reconnect", 90*time.Second, harness.Converged(5))
	l.waitConverged(t, "the controller back", globalLimit)
	got = l.measure(t, measureFor)
	got.check(t, "the controller back", globalLimit)
	l.stop()
}

// keysOf finds, for each of the instances, a value of x-key that
// loadgen's sidecar sends to it (consistent hashing), by asking the demo
// app behind it who it is.
func keysOf(t *testing.T, url string, instances ...string) map[string]string {
	t.Helper()
	keys := map[string]string{}
	c := &http.Client{Timeout: 10 * time.Second}
	for i := 0; len(keys) < len(instances); i++ {
		if i == 1000 {
			t.Fatalf("1000 keys hash to the instances %v only; want each of %v", keys, instances)
		}
		key := fmt.Sprintf("key-%d", i)
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-Key", key)
		code, body, _, err := harness.Do(c, req)
		if err != nil || code != 200 {
			t.Fatalf("GET / with x-key %s: %d %q %v", key, code, body, err)
		}
		var a struct{ Instance string }
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("decoding %q: %v", body, err)
		}
		if _, ok := keys[a.Instance]; !ok {
			keys[a.Instance] = key
		}
	}
	t.Logf("keys by instance: %v", keys)
	return keys
}

// instanceOf is the instance a demo app's answer names.
func instanceOf(body string) string {
	var a struct{ Instance string }
	json.Unmarshal([]byte(body), &a)
	return a.Instance
}

// loadStream is a steady rate of POSTs with one x-key, which reaches one
// instance.
type loadStream struct {
	key, instance string
	rate          float64 // requests a second
}

// answer is one request of a constantLoad: when it was answered, by
// which stream, and its status.
type answer struct {
	at     time.Time
	stream int
	code   int
}

// constantLoad sends each stream's requests at their intended times
// (open loop: a slow answer does not slow the load) and keeps every
// answer.
type constantLoad struct {
	streams []loadStream
	mu      sync.Mutex
	answers []answer
	errs    map[string]int // by error, or unexpected status
	skipped atomic.Int64   // sends skipped: too many in flight
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startConstantLoad(t *testing.T, url string, streams []loadStream) *constantLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &constantLoad{streams: streams, cancel: cancel, errs: map[string]int{}}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i, st := range streams {
		l.wg.Go(func() {
			inflight := make(chan struct{}, 64)
			tick := time.NewTicker(time.Duration(float64(time.Second) / st.rate))
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				select {
				case inflight <- struct{}{}:
				default:
					l.skipped.Add(1)
					continue
				}
				l.wg.Go(func() {
					defer func() { <-inflight }()
					req, _ := http.NewRequestWithContext(ctx, "POST", url, nil)
					req.Header.Set("X-Key", st.key)
					code, body, _, err := harness.Do(c, req)
					l.mu.Lock()
					defer l.mu.Unlock()
					switch {
					case ctx.Err() != nil:
					case err != nil:
						l.errs[err.Error()]++
					case code == 200 && instanceOf(body) != st.instance:
						l.errs["answered by another instance than "+st.instance]++
					case code == 200 || code == http.StatusTooManyRequests:
						l.answers = append(l.answers, answer{at: time.Now(), stream: i, code: code})
					default:
						l.errs[fmt.Sprintf("status %d", code)]++
					}
				})
			}
		})
	}
	t.Cleanup(l.stop)
	t.Cleanup(tr.CloseIdleConnections)
	return l
}

func (l *constantLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// rates are admitted requests a second over a window: in all and by
// instance.
type rates struct {
	window   time.Duration
	total    float64
	admitted map[string]float64
	refused  float64
	errs     map[string]int
	skipped  int64
}

// window counts the answers in [from, to).
func (l *constantLoad) window(from, to time.Time) rates {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := rates{window: to.Sub(from), admitted: map[string]float64{}, errs: map[string]int{}}
	secs := to.Sub(from).Seconds()
	for _, a := range l.answers {
		if a.at.Before(from) || !a.at.Before(to) {
			continue
		}
		if a.code == 200 {
			r.total += 1 / secs
			r.admitted[l.streams[a.stream].instance] += 1 / secs
		} else {
			r.refused += 1 / secs
		}
	}
	for k, v := range l.errs {
		r.errs[k] = v
	}
	return r
}

// measure waits for a window of d to pass under the load and returns its
// rates.
func (l *constantLoad) measure(t *testing.T, d time.Duration) rates {
	t.Helper()
	from := time.Now()
	<-time.After(d) // the measurement window itself, not a wait for readiness
	r := l.window(from, time.Now())
	r.skipped = l.skipped.Load()
	return r
}

// waitConverged waits (at most 30s) until the admitted rate over the last
// two seconds is within 10% of want, and logs how long that took.
func (l *constantLoad) waitConverged(t *testing.T, what string, want float64) {
	t.Helper()
	start := time.Now()
	var last rates
	took := harness.Eventually(t, "the admitted rate to converge ("+what+")", 30*time.Second, func() error {
		now := time.Now()
		if now.Sub(start) < 2*time.Second {
			return fmt.Errorf("less than 2s of load")
		}
		last = l.window(now.Add(-2*time.Second), now)
		if math.Abs(last.total-want) > 0.1*want {
			return fmt.Errorf("admitted %.1f/s over the last 2s (%s), refused %.1f/s, want %.0f/s within 10%%; errors so far %v", last.total, last.byInstance(), last.refused, want, last.errs)
		}
		return nil
	})
	t.Logf("%s: converged %s after the wait began (the first look needs 2s of answers): %.1f/s admitted over the last 2s (%s)", what, took.Round(time.Millisecond), last.total, last.byInstance())
}

func (r rates) byInstance() string {
	var parts []string
	for _, id := range []string{"api-0", "api-1", "api-2", "api-3"} {
		if v, ok := r.admitted[id]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f/s", id, v))
		}
	}
	return strings.Join(parts, ", ")
}

// check holds the admitted rate within 10% of want, and logs the rates.
func (r rates) check(t *testing.T, what string, want float64) {
	t.Helper()
	t.Logf("%s: admitted %.1f/s over %s (%s), refused %.1f/s; want %.0f/s within 10%% (%+.1f%%); skipped sends %d, errors %v",
		what, r.total, r.window.Round(time.Millisecond), r.byInstance(), r.refused, want, 100*(r.total-want)/want, r.skipped, r.errs)
	if math.Abs(r.total-want) > 0.1*want {
		t.Errorf("%s: admitted %.1f/s, want %.0f/s within 10%%", what, r.total, want)
	}
	var errs int
	for _, n := range r.errs {
		errs += n
	}
	if errs > 10 {
		t.Errorf("%s: %d requests failed: %v", what, errs, r.errs)
	}
}
