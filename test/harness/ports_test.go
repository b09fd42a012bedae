package harness

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestPickPortSkipsTheSchedulerSpan(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lo, hi   int
		draw     int // what intn returns
		want     int
		wantNone bool
	}{
		{name: "lowest", lo: 10000, hi: 32768, draw: 0, want: 10000},
		{name: "last below the span", lo: 10000, hi: 32768, draw: 13999, want: 23999},
		{name: "first above the span", lo: 10000, hi: 32768, draw: 14000, want: 29000},
		{name: "highest", lo: 10000, hi: 32768, draw: 32768 - 10000 - 5000 - 1, want: 32767},
		{name: "range ends inside the span", lo: 10000, hi: 26000, draw: 13999, want: 23999},
		{name: "range starts inside the span", lo: 25000, hi: 32768, draw: 0, want: 29000},
		{name: "range below the span", lo: 10000, hi: 20000, draw: 9999, want: 19999},
		{name: "range inside the span", lo: 24500, hi: 28000, wantNone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pickPort(tc.lo, tc.hi, func(n int) int {
				if tc.draw >= n {
					t.Fatalf("draw %d out of intn(%d)", tc.draw, n)
				}
				return tc.draw
			})
			if tc.wantNone {
				if ok {
					t.Fatalf("pickPort(%d, %d) = %d, want none", tc.lo, tc.hi, got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Fatalf("pickPort(%d, %d) drawing %d = %d, %v; want %d", tc.lo, tc.hi, tc.draw, got, ok, tc.want)
			}
		})
	}
}

// FreePorts never returns a port Nomad may give a task of nomadtest's
// agent.
func TestFreePortsAvoidTheSchedulerSpan(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skip("no ip_local_port_range: the kernel picks the ports")
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if start, _ := strconv.Atoi(f[0]); start <= SchedulerPortsHi {
			t.Skipf("the ephemeral range starts at %d, inside or below the schedulers' span", start)
		}
	}
	for range 20 {
		ports, err := FreePorts(50)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if p >= SchedulerPortsLo && p < SchedulerPortsHi {
				t.Fatalf("FreePorts returned %d, in the schedulers' span [%d, %d)", p, SchedulerPortsLo, SchedulerPortsHi)
			}
		}
	}
}
