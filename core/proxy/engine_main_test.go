package proxy_test

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's tests through both HTTP/1.1 engines of the
// inbound listener (inbound_bytes.go), net/http first, then the
// byte-level one, so that every test of an inbound HTTP/1.1 feature
// proves the two equal. WEFT_HTTP1_ENGINE set runs that engine only; a
// benchmark or fuzzing run uses the engine it names (net/http when
// unset), once:
//
//	WEFT_HTTP1_ENGINE=bytes go test -run - -bench 'HTTPChain$' -benchmem ./core/proxy/
func TestMain(m *testing.M) {
	os.Exit(runBothEngines(m))
}

func runBothEngines(m *testing.M) int {
	flag.Parse()
	if os.Getenv("WEFT_HTTP1_ENGINE") != "" || flagSet("test.bench") || flagSet("test.fuzz") {
		return m.Run()
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
	os.Unsetenv("WEFT_HTTP1_ENGINE")
	return code
}

func flagSet(name string) bool {
	f := flag.Lookup(name)
	return f != nil && f.Value.String() != ""
}
