package l7

import (
	"os"
	"testing"

	"github.com/weftmesh/weft/core/proxy/proxytest"
)

// TestMain runs the L7 tests through both HTTP/1.1 engines of the
// sidecars' inbound listeners (proxytest.RunBothEngines), so that each
// feature test proves the two equal; it exits non-zero when either run
// fails.
func TestMain(m *testing.M) {
	os.Exit(proxytest.RunBothEngines(m))
}
