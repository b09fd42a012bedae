package main

import (
	"strings"
	"testing"
)

// --kubernetes-trust-bundle takes the kubernetes adapter's credentials,
// and is refused without that adapter.
func TestTrustBundleFlagNeedsKubernetesAdapter(t *testing.T) {
	specs, err := parseAdapters([]string{"local=workloads.hcl", "kubernetes=/etc/kubeconfig"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		flags      trustBundleFlags
		specs      []adapterSpec
		wantSource string
		wantErr    string
	}{
		{"off", trustBundleFlags{}, nil, "", ""},
		{"the adapter's kubeconfig", trustBundleFlags{name: "weft-trust-bundle"}, specs, "/etc/kubeconfig", ""},
		{"no kubernetes adapter", trustBundleFlags{name: "weft-trust-bundle"}, specs[:1], "", "--adapter kubernetes=in-cluster"},
	} {
		src, err := tc.flags.check(tc.specs)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || src != tc.wantSource):
			t.Errorf("%s: %q, %v; want source %q", tc.name, src, err, tc.wantSource)
		}
	}
}
