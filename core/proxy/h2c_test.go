package proxy

import (
	"net/http"
	"reflect"
	"testing"
)

// TestDropH2CUpgrade: an upgrade to h2c, however spelled, leaves no trace
// an application could switch on; other upgrades stay.
func TestDropH2CUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want http.Header
	}{
		{"h2c", http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMA"}}, http.Header{}},
		{"H2C in capitals, keep-alive kept", http.Header{"Connection": {"keep-alive, upgrade", "http2-settings"}, "Upgrade": {"H2C"}}, http.Header{"Connection": {"keep-alive"}}},
		{"h2c among others", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket, h2c"}}, http.Header{}},
		{"h2c with a version", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c/1"}}, http.Header{}},
		{"websocket stays", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}},
		{"nothing", http.Header{"X": {"y"}}, http.Header{"X": {"y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropH2CUpgrade(tc.in)
			if !reflect.DeepEqual(tc.in, tc.want) {
				t.Errorf("got %v, want %v", tc.in, tc.want)
			}
		})
	}
}
