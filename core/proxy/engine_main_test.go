package proxy_test

import (
	"os"
	"testing"

	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// TestMain runs the package's tests through both HTTP/1.1 engines of the
// inbound listener (proxytest.RunBothEngines); it exits non-zero when
// either run fails.
func TestMain(m *testing.M) {
	os.Exit(proxytest.RunBothEngines(m))
}
