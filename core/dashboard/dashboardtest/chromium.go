// Package dashboardtest drives headless Chromium (Debian's chromium) for
// the dashboard's tests: core/dashboard's own, against a stub admin API,
// and test/dashboard's, against a real controller. Entry points: Binary
// finds Chromium (failing the test with how to install it when it is
// missing: it is never a reason to skip), DumpDOM loads a page and returns
// its DOM once its scripts have run, Screenshot saves a PNG of it, and
// Parse/Find read the DOM by its data-testid attributes.
//
// Chromium runs with a throw-away profile, without sandbox (tests run as
// root), accepting the controller's mesh-CA certificate
// (--ignore-certificate-errors: the test verifies the controller itself),
// and with every host name mapped to nothing, so that it reaches only the
// loopback address the test gives it and none of its own services.
package dashboardtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvChromium names a Chromium binary to use instead of the one on PATH.
const EnvChromium = "WEFT_CHROMIUM"

// Install says how to get Chromium.
const Install = "install Debian's chromium (as root: test/tools/chromium.sh, which `make test` runs; or apt-get install -y chromium), or set " + EnvChromium + " to a Chromium binary"

// Binary returns the Chromium binary, failing t when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v; %s", EnvChromium, p, err, Install)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("the dashboard tests need headless Chromium and found none on PATH: %s", Install)
	return ""
}

// Timeout bounds one Chromium run.
const Timeout = 90 * time.Second

func run(t testing.TB, budget time.Duration, page string, extra ...string) []byte {
	t.Helper()
	u, err := url.Parse(page)
	if err != nil {
		t.Fatalf("parsing the page's URL: %v", err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		t.Fatalf("chromium may load only a loopback address in a test, not %q", u.Host)
	}
	bin := Binary(t)
	args := []string{
		"--headless", "--disable-gpu", "--no-sandbox", "--ignore-certificate-errors",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-sync", "--disable-background-networking",
		"--disable-component-update", "--disable-default-apps", "--disable-domain-reliability",
		"--no-pings", "--dns-prefetch-disable", "--disable-dev-shm-usage", "--hide-scrollbars",
		// Nothing resolves, no address connects, but the page's own.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE " + u.Hostname(),
		"--window-size=1440,1500",
		"--virtual-time-budget=" + strconv.Itoa(int(budget/time.Millisecond)),
	}
	args = append(args, extra...)
	args = append(args, page)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("chromium did not finish within %s: %s", Timeout, tail(stderr.String()))
		}
		t.Fatalf("running chromium %s: %v: %s", strings.Join(extra, " "), err, tail(stderr.String()))
	}
	return stdout.Bytes()
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// DumpDOM loads url in headless Chromium, lets its scripts run for budget
// of virtual time (fetches pause that clock, so data the page fetches is
// in), and returns the page's DOM as HTML.
func DumpDOM(t testing.TB, page string, budget time.Duration) string {
	t.Helper()
	return string(run(t, budget, page, "--dump-dom"))
}

// Screenshot loads url like DumpDOM and saves a PNG of it as file.
func Screenshot(t testing.TB, page, file string, budget time.Duration) {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	run(t, budget, page, "--screenshot="+abs)
	b, err := os.ReadFile(abs)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("the screenshot %s is not a PNG (%d bytes)", abs, len(b))
	}
}

// ArtifactDir is where a test keeps what it shows a person (a
// screenshot): $WEFT_TEST_ARTIFACTS/name when that is set, else a
// directory under the system's temporary directory that outlives the
// test. The test logs it.
func ArtifactDir(t testing.TB, name string) string {
	t.Helper()
	base := os.Getenv("WEFT_TEST_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "weft-test-artifacts")
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("making the artifact directory: %v", err)
	}
	return dir
}

// Sprint is a short description of elements, for failure messages.
func Sprint(els []Element) string {
	var b strings.Builder
	for _, e := range els {
		fmt.Fprintf(&b, "\n  %v %q", e.Attr, e.Text)
	}
	return b.String()
}
