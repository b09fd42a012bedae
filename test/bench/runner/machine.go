package runner

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes the host a run happened on.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	HAProxy  string `json:"haproxy"`
	MemTotal string `json:"mem_total"`
}

// DescribeMachine reads the CPU, kernel, Go and HAProxy versions.
func DescribeMachine() Machine {
	// Not runtime.NumCPU: make bench pins the runner to one core.
	m := Machine{Go: runtime.Version(), HAProxy: HAProxyVersion()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.CPU == "" {
					m.CPU = strings.TrimSpace(v)
				}
			case "processor":
				m.Cores++
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		m.MemTotal = strings.Join(strings.Fields(l)[1:], " ")
	}
	return m
}

// cpuTimes is the aggregate line of /proc/stat. irq counts interrupt and
// softirq time, which no process is charged for: on loopback that is
// mostly the suite's own traffic.
type cpuTimes struct{ total, idle, steal, irq uint64 }

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("reading /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("reading /proc/stat: unexpected first line %q", line)
	}
	var t cpuTimes
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		t.total += v
		switch i {
		case 3, 4: // idle, iowait
			t.idle += v
		case 5, 6:
			t.irq += v
		case 7:
			t.steal += v
		}
	}
	return t, nil
}

// Load is how busy the machine was over a short sample, before a run,
// while none of the suite's processes were working.
type Load struct {
	BusyPct  float64 `json:"busy_pct"`
	StealPct float64 `json:"steal_pct"`
	LoadAvg1 float64 `json:"loadavg1"`
}

// sampleLoad measures CPU use over d.
func sampleLoad(d time.Duration) (Load, error) {
	a, err := readCPUTimes()
	if err != nil {
		return Load{}, err
	}
	time.Sleep(d)
	b, err := readCPUTimes()
	if err != nil {
		return Load{}, err
	}
	var l Load
	if tot := float64(b.total - a.total); tot > 0 {
		l.BusyPct = 100 * (1 - float64(b.idle-a.idle)/tot)
		l.StealPct = 100 * float64(b.steal-a.steal) / tot
	}
	if s, err := os.ReadFile("/proc/loadavg"); err == nil {
		l.LoadAvg1, _ = strconv.ParseFloat(strings.Fields(string(s))[0], 64)
	}
	return l, nil
}

// quiet says whether l leaves the machine to the benchmark, and if not why.
func (l Load) quiet(maxBusy float64) (bool, string) {
	if l.BusyPct > maxBusy {
		return false, fmt.Sprintf("%.0f%% of the CPUs were busy before the run (limit %.0f%%): other work is running", l.BusyPct, maxBusy)
	}
	if l.StealPct > 2 {
		return false, fmt.Sprintf("%.1f%% CPU steal: the hypervisor is giving our cores away", l.StealPct)
	}
	return true, ""
}

// userHZ is the unit of /proc CPU times on Linux.
const userHZ = 100

// procStats reads a process's resident memory (KiB) and CPU time.
func procStats(pid int) (rssKiB int64, cpu time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rssKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name (which may hold spaces) in parens.
	rest := string(s[strings.LastIndexByte(string(s), ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return rssKiB, time.Duration(ut+st) * time.Second / userHZ, nil
}
