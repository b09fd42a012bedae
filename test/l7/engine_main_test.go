package l7

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the L7 tests through both HTTP/1.1 engines of the
// sidecars' inbound listeners (core/proxy/inbound_bytes.go): net/http,
// then the byte-level engine, so that each feature test proves the two
// equal. WEFT_HTTP1_ENGINE set runs that engine only; a benchmark or
// fuzzing run uses the one it names (net/http when unset), once.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("WEFT_HTTP1_ENGINE") != "" || flagSet("test.bench") || flagSet("test.fuzz") {
		os.Exit(m.Run())
	}
	code := 0
	for _, e := range []string{"nethttp", "bytes"} {
		os.Setenv("WEFT_HTTP1_ENGINE", e)
		if testing.Verbose() {
			fmt.Printf("=== the inbound listener's HTTP/1.1 engine: %s\n", e)
		}
		if c := m.Run(); c != 0 {
			fmt.Printf("FAIL with the inbound listener's HTTP/1.1 engine %s\n", e)
			code = c
		}
	}
	os.Exit(code)
}

func flagSet(name string) bool {
	f := flag.Lookup(name)
	return f != nil && f.Value.String() != ""
}
