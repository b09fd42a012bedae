package main

import (
	"os"
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

// --ready-file goes with a node proxy that keeps a readiness, and
// `weft-proxy ready` reads it.
func TestReadyFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    options
		want string
	}{
		{"a sidecar", options{instance: "a", readyFile: "r"}, "--ready-file needs --node"},
		{"with --serve-file", options{node: "n", serveFile: "f", readyFile: "r"}, "does not go with --serve-file"},
		{"with --serve", options{node: "n", serve: []string{"a=127.0.0.1:0"}, readyFile: "r"}, ""},
	} {
		err := checkReadyFile(tc.o)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	file := t.TempDir() + "/ready"
	probe := func() error {
		c := newRootCmd()
		c.SetArgs([]string{"ready", "--file", file})
		return c.Execute()
	}
	if err := probe(); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("probe before the file exists: %v, want not ready", err)
	}
	if err := os.WriteFile(file, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := probe(); err != nil {
		t.Errorf("probe with the file: %v, want ready", err)
	}
}
