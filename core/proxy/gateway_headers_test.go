package proxy

import (
	"slices"
	"strings"
	"testing"
)

// TestIsClientAddressHeader: the check that drops client address headers
// at a gateway takes the same names as lower-casing the name with
// underscores for dashes and comparing did (the form it had before it
// stopped copying every name), and allocates nothing.
func TestIsClientAddressHeader(t *testing.T) {
	names := []string{
		"X-Forwarded-For", "x-forwarded-for", "X_Forwarded_For", "X-FORWARDED-PROTO", "X-Forwarded-", "X-Forwarded",
		"X-Forwarded-Anything-At-All", "x_forwarded_host", "Forwarded", "FORWARDED", "Forwarded-X", "Forwardedx",
		"X-Real-Ip", "X_Real_IP", "x-real-ip2", "X-Client-Ip", "Client-Ip", "Client_IP", "True-Client-Ip",
		"X-Cluster-Client-Ip", "X-Original-Forwarded-For", "X-Originating-Ip", "Cf-Connecting-Ip", "CF_CONNECTING_IP",
		"Fastly-Client-Ip", "X-Envoy-External-Address", "X-Envoy-External-Addres", "Host", "Content-Type",
		"X-Forwarder-For", "", "X", "Authorization", "X-Forwarded-Access-Token",
	}
	for _, c := range clientAddressHeaders {
		names = append(names, c, strings.ToUpper(c), strings.ReplaceAll(c, "-", "_"))
	}
	for _, n := range names {
		l := strings.ToLower(strings.ReplaceAll(n, "_", "-"))
		want := strings.HasPrefix(l, "x-forwarded-") || slices.Contains(clientAddressHeaders, l)
		if got := isClientAddressHeader(n); got != want {
			t.Errorf("isClientAddressHeader(%q) = %v, want %v", n, got, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { isClientAddressHeader("X_Cluster_Client_IP") }); a != 0 {
		t.Errorf("isClientAddressHeader allocates %.0f times, want 0", a)
	}
}
