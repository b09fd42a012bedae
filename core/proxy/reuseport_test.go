//go:build linux

package proxy

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// Two listeners on one port: both with ReusePort share it; if either
// lacks it, the second bind fails with EADDRINUSE.
func TestListenReusePort(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second bool
		shared        bool
	}{
		{"both", true, true, true},
		{"neither", false, false, false},
		{"only the first", true, false, false},
		{"only the second", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Listen(t.Context(), "127.0.0.1:0", tc.first)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := Listen(t.Context(), a.Addr().String(), tc.second)
			if tc.shared {
				if err != nil {
					t.Fatalf("second listener on %s: %v, want it shared", a.Addr(), err)
				}
				defer b.Close()
				// The kernel spreads connections between them: dial until
				// each has accepted one (bounded).
				accepted := make(chan string, 128)
				for name, ln := range map[string]net.Listener{"first": a, "second": b} {
					go func() {
						for {
							c, err := ln.Accept()
							if err != nil {
								return
							}
							c.Close()
							accepted <- name
						}
					}()
				}
				got := map[string]int{}
				for i := 0; i < 100 && len(got) < 2; i++ {
					c, err := net.Dial("tcp", a.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					got[<-accepted]++
					c.Close()
				}
				if len(got) != 2 {
					t.Errorf("100 connections went to one listener (%v), want the kernel to spread them", got)
				}
				return
			}
			if err == nil {
				b.Close()
				t.Fatalf("second listener on %s bound, want EADDRINUSE", a.Addr())
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("second listener: %v, want EADDRINUSE", err)
			}
		})
	}
}
