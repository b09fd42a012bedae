package proxytest

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// EngineEnv is the environment variable that chooses the inbound
// listener's HTTP/1.1 engine (proxy.Options.HTTP1Engine).
const EngineEnv = "WEFT_HTTP1_ENGINE"

// RunBothEngines is a TestMain body: it runs the package's tests through
// both HTTP/1.1 engines of the inbound listener (core/proxy
// inbound_bytes.go), net/http first, then the byte-level one, so that
// every test of an inbound HTTP/1.1 feature proves the two equal, and
// returns a failing exit code if either run failed. With EngineEnv set
// it runs that engine only; a benchmark or fuzzing run uses the engine
// it names (net/http when unset), once:
//
//	WEFT_HTTP1_ENGINE=bytes go test -run - -bench 'HTTPChain$' -benchmem ./core/proxy/
func RunBothEngines(m *testing.M) int {
	flag.Parse()
	if os.Getenv(EngineEnv) != "" || flagSet("test.bench") || flagSet("test.fuzz") {
		return m.Run()
	}
	code := 0
	for _, e := range []string{"nethttp", "bytes"} {
		os.Setenv(EngineEnv, e)
		if testing.Verbose() {
			fmt.Printf("=== the inbound listener's HTTP/1.1 engine: %s\n", e)
		}
		if c := m.Run(); c != 0 {
			fmt.Printf("FAIL with the inbound listener's HTTP/1.1 engine %s\n", e)
			code = c
		}
	}
	os.Unsetenv(EngineEnv)
	return code
}

func flagSet(name string) bool {
	f := flag.Lookup(name)
	return f != nil && f.Value.String() != ""
}
