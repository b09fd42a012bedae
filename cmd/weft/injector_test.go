package main

import (
	"bytes"
	"strings"
	"testing"
)

// `weft injector` refuses to start without what the webhook needs, and
// says what is missing.
func TestInjectorCommandRefusesMissingFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no proxy image"},
		{[]string{"--proxy-image", "localhost/weft-proxy:dev-amd64"}, "no controller address"},
		{[]string{"--proxy-image", "p", "--controller", "c:7400", "--listen", "127.0.0.1:0"}, "--tls-cert"},
		{[]string{"--proxy-image", "p", "--controller", "c:7400", "--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"}, "/nonexistent.crt"},
	} {
		cmd := newInjectorCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("weft injector %v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}
