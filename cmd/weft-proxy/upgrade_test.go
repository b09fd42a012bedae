package main

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/proxy"
	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// A node proxy that cannot share its admin port says which port and what
// --reuse-port has to do with it, whichever side lacks the option.
func TestReusePortRefusals(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	bundle := writeBundle(t, ca.RootPEM)
	for _, tc := range []struct {
		name       string
		heldShared bool     // the running process set SO_REUSEPORT
		flags      []string // the new one's
		want       string
	}{
		{"the new one without --reuse-port", true, []string{"--reuse-port=false"}, "run both with --reuse-port"},
		{"the running one without it", false, nil, "start both with --reuse-port under one user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			ln, err := proxy.Listen(t.Context(), addr, tc.heldShared)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			args := append([]string{"--node", "n1", "--serve", "a=" + addr, "--controller", "127.0.0.1:1", "--trust-bundle", bundle}, tc.flags...)
			done, stop := start(t, args...)
			defer stop()
			err = result(t, done)
			if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("weft-proxy %v: %v, want an error naming %s and saying %q", args, err, addr, tc.want)
			}
		})
	}
}

func TestReusePortDefault(t *testing.T) {
	if !reusePortDefault(options{node: "n1"}) {
		t.Error("a node proxy: --reuse-port off by default, want on (an upgrade needs it on the running process)")
	}
	if reusePortDefault(options{instance: "a"}) {
		t.Error("a sidecar: --reuse-port on by default, want off")
	}
}
