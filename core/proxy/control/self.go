package control

import (
	"time"

	"github.com/weftmesh/weft/core/version"
)

// What a sidecar reports of itself on its config stream (ConfigRequest's
// proxy_version and sent_unix_ms), for `weft check`.
//
// testVersion and testSkew exist for the end-to-end tests of `weft check`
// alone, which must show a sidecar of another version and one whose clock
// is off: they are set only by building weft-proxy with
//
//	-ldflags "-X github.com/weftmesh/weft/core/proxy/control.testVersion=0.0.0-old -X github.com/weftmesh/weft/core/proxy/control.testSkew=30s"
//
// No flag, variable or file of a released sidecar reaches them.
var testVersion, testSkew string

func reportedVersion() string {
	if testVersion != "" {
		return testVersion
	}
	return version.Version
}

func reportedSkew() time.Duration {
	d, _ := time.ParseDuration(testSkew)
	return d
}
