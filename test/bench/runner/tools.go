package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EnsureTools installs HAProxy and wrk from the Debian packages when they
// are missing (apt-get, as root or through sudo), and checks taskset.
func EnsureTools(log func(string, ...any)) error {
	var missing []string
	for bin, pkg := range map[string]string{"haproxy": "haproxy", "wrk": "wrk", "taskset": "util-linux"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	log("installing %s with apt-get", strings.Join(missing, " "))
	var prefix []string
	if os.Geteuid() != 0 {
		prefix = []string{"sudo", "-n"}
	}
	run := func(args ...string) error {
		args = append(prefix, args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run(append([]string{"apt-get", "install", "-y"}, missing...)...); err != nil {
		if err := run("apt-get", "update"); err != nil {
			return fmt.Errorf("installing the benchmark peers: %w", err)
		}
		if err := run(append([]string{"apt-get", "install", "-y"}, missing...)...); err != nil {
			return fmt.Errorf("installing the benchmark peers (install haproxy and wrk yourself): %w", err)
		}
	}
	return nil
}

// HAProxyVersion is the first line of haproxy -v.
func HAProxyVersion() string {
	out, err := exec.Command("haproxy", "-v").Output()
	if err != nil {
		return "haproxy: " + err.Error()
	}
	l, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(l)
}

// WrkCheck is one side-by-side of weft-load and wrk against the backend
// directly, both closed loop with the same connections, one thread, on
// the same core.
type WrkCheck struct {
	Conns           int     `json:"conns"`
	Seconds         float64 `json:"seconds"`
	WeftLoadRPS     float64 `json:"weft_load_rps"`
	WeftLoadMeanUs  float64 `json:"weft_load_mean_us"`
	WrkRPS          float64 `json:"wrk_rps"`
	WrkMeanUs       float64 `json:"wrk_mean_us"`
	WeftLoadP50Us   float64 `json:"weft_load_p50_us"`
	WrkP50Us        float64 `json:"wrk_p50_us"`
	Quiet           bool    `json:"quiet"`
	BackendAddrNote string  `json:"note"`
}

var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var wrkLatency = regexp.MustCompile(`(?m)^\s+Latency\s+([0-9.]+)(us|ms|s)`)
var wrkP50 = regexp.MustCompile(`(?m)^\s+50%\s+([0-9.]+)(us|ms|s)`)

func wrkDur(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "ms":
		return f * 1e3
	case "s":
		return f * 1e6
	}
	return f
}

// parseWrk reads requests/sec, mean and median latency (us) from wrk's
// output with --latency.
func parseWrk(out string) (rps, meanUs, p50Us float64, err error) {
	m := wrkRPS.FindStringSubmatch(out)
	l := wrkLatency.FindStringSubmatch(out)
	p := wrkP50.FindStringSubmatch(out)
	if m == nil || l == nil || p == nil {
		return 0, 0, 0, fmt.Errorf("reading wrk's output: %q", out)
	}
	rps, _ = strconv.ParseFloat(m[1], 64)
	return rps, wrkDur(l[1], l[2]), wrkDur(p[1], p[2]), nil
}

func runWrk(ctx context.Context, target string, conns int, d time.Duration) (string, error) {
	cmd := exec.CommandContext(ctx, "taskset", "-c", loadCore, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "http://"+target+"/1k")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %v: %s", err, out)
	}
	return string(out), nil
}
