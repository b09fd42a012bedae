package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The sidecar's garbage collector settings. GOGC stays Go's 100: on the
// gateway bench scenario GOGC=200 and 400 raised the proxies' RSS under
// load from 25.1 to 29.0 and 37.3 MiB with no CPU saving the runner could
// see (BENCHMARKS.md, "TLS resumption, the gateway's hop, GC"). What the
// sidecar sets for itself is a soft memory limit where its container has
// a hard one: 90% of the cgroup's memory limit, so that the collector
// works harder before the kernel kills the process, rather than after.
// GOMEMLIMIT (or GOGC=off with GOMEMLIMIT) in the environment overrides
// it, as the Go runtime reads them.

// cgroupMemoryFiles are where a container's memory limit is read: cgroup
// v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryLimitShare is the part of the cgroup's limit the Go heap aims
// under, leaving the rest to stacks, buffers the kernel counts, and the
// binary.
const memoryLimitShare = 0.9

// noLimit: a cgroup v1 limit this large is "none" (the kernel's
// page-rounded maximum).
const noLimit = 1 << 62

// memoryLimit is the soft memory limit the sidecar sets (0: none), from
// the environment and the cgroup files read with read.
func memoryLimit(getenv func(string) string, read func(string) ([]byte, error)) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0 // the operator's own, which the runtime has read
	}
	for _, f := range cgroupMemoryFiles {
		b, err := read(f)
		if err != nil || len(b) > 32 { // a number, or "max"
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= noLimit {
			return 0
		}
		return int64(float64(n) * memoryLimitShare)
	}
	return 0
}

// setGCDefaults applies memoryLimit to the runtime.
func setGCDefaults() {
	if l := memoryLimit(os.Getenv, os.ReadFile); l > 0 {
		debug.SetMemoryLimit(l)
	}
}
