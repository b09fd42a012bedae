package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreePorts returns n distinct TCP ports of 127.0.0.1 that were free a
// moment ago (each held open until all n are found, so that none repeats).
//
// The ports are drawn at random below the kernel's ephemeral range
// (ip_local_port_range), where the kernel never picks the source port of
// an outgoing connection: a port from the range (net.Listen on port 0)
// can be taken by any process's connect before the test binds it again,
// which made tests that put ports in a policy fail now and then with
// "address already in use" while other packages ran. Where the range
// cannot be read, the kernel picks (port 0). They are never in the span
// the scheduler harnesses give their tasks (SchedulerPortsLo).
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := belowEphemeral()
	var out []int
	for range n {
		l, err := listenBelow(lo, hi)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// SchedulerPortsLo and SchedulerPortsHi bound the span of ports
// [SchedulerPortsLo, SchedulerPortsHi) that FreePorts never draws from:
// the scheduler harnesses give it to their agents for the ports of the
// tasks they place (nomadtest: Nomad's min_dynamic_port and
// max_dynamic_port). Nomad hands a task a port of its range whether a
// process of the host holds it or not, so a port FreePorts picked there
// (a controller's --admin, another package's listener) could be given to
// an allocation whose task then cannot bind it.
const (
	SchedulerPortsLo = 24000
	SchedulerPortsHi = 29000
)

// listenBelow listens on a random free port of [lo, hi) outside the
// schedulers' span, or on port 0 when that is empty or 64 draws found
// nothing free.
func listenBelow(lo, hi int) (net.Listener, error) {
	for i := 0; i < 64; i++ {
		p, ok := pickPort(lo, hi, rand.IntN)
		if !ok {
			break
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			return l, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// pickPort draws a port of [lo, hi) outside [SchedulerPortsLo,
// SchedulerPortsHi) with intn (rand.IntN); false when none is left.
func pickPort(lo, hi int, intn func(int) int) (int, bool) {
	gapLo, gapHi := max(lo, SchedulerPortsLo), min(hi, SchedulerPortsHi)
	gap := max(0, gapHi-gapLo)
	n := hi - lo - gap
	if n <= 0 {
		return 0, false
	}
	p := lo + intn(n)
	if gap > 0 && p >= gapLo {
		p += gap
	}
	return p, true
}

// belowEphemeral is the span of ports FreePorts draws from: from 10000 up
// to the start of the ephemeral range; empty when that cannot be read or
// starts too low.
func belowEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start <= 11000 {
		return 0, 0
	}
	return 10000, start
}

// FreePort is one port of FreePorts: a TCP port of 127.0.0.1 nothing
// listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}
