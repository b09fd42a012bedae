package main

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// A node proxy that discovers its instances (no --serve, its own
// scheduler credential): each mistake in its flags is refused before
// anything starts, with what to do.
func TestDiscoveringNodeFlags(t *testing.T) {
	ca, err := proxytest.NewCA("weft.test")
	if err != nil {
		t.Fatal(err)
	}
	bundle := writeBundle(t, ca.RootPEM)
	t.Setenv("TEST_NODE_JWT", "a.b.c")
	base := []string{"--node", "n1", "--controller", "127.0.0.1:1", "--trust-bundle", bundle}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"--serve and a credential", []string{"--credential-adapter", "nomad", "--credential-env", "TEST_NODE_JWT", "--serve", "a=127.0.0.1:0"}, "drop --credential-adapter (or drop --serve"},
		{"no credential source", []string{"--credential-adapter", "nomad"}, "needs --credential-env or --credential-file"},
		{"an empty credential", []string{"--credential-adapter", "nomad", "--credential-env", "TEST_NODE_JWT_UNSET"}, "the variable is empty or unset"},
		{"no interval", []string{"--credential-adapter", "nomad", "--credential-env", "TEST_NODE_JWT", "--discover-interval", "0s"}, "--discover-interval must be positive"},
		{"no credential, no --serve", nil, "at least one --serve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, base...), tc.args...)
			done, stop := start(t, args...)
			defer stop()
			if err := result(t, done); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("weft-proxy %v: %v, want an error saying %q", args, err, tc.want)
			}
		})
	}
}
