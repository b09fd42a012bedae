package nomad

import (
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

var fixtureN atomic.Int32

// conformanceFixture gives every subtest a namespace of its own on the
// shared agent, with a job "web" of two allocations; Change scales web to
// one and adds a job "db".
func conformanceFixture(t *testing.T) sdktest.Fixture {
	agent := sharedAgent(t)
	ns := fmt.Sprintf("conf%d", fixtureN.Add(1))
	agent.CreateNamespace(t, ns)
	agent.Run(t, sleepJob(ns, "web", 2))
	want := ids(agent.Running(t, ns, "web", 2, time.Minute), "web")
	good := &sdk.ConfigureRequest{
		Source:  agent.Addr,
		Options: map[string]string{OptionTokenFile: agent.TokenFile(t), OptionNamespace: ns},
	}
	return sdktest.Fixture{
		Good:    good,
		Bad:     &sdk.ConfigureRequest{Source: "nomad.example:4646"},
		WantIDs: want,
		Change: func(t *testing.T) []string {
			agent.Run(t, sleepJob(ns, "web", 1))
			agent.Run(t, sleepJob(ns, "db", 1))
			web := ids(agent.Running(t, ns, "web", 1, time.Minute), "web")
			return append(web, ids(agent.Running(t, ns, "db", 1, time.Minute), "db")...)
		},
	}
}

func TestConformanceInMemory(t *testing.T) {
	sdktest.Run(t, sdktest.InMemory(func() sdk.Adapter {
		return fastAdapter()
	}), conformanceFixture)
}

// Over a real plugin process: this test binary serves the adapter with
// sdk.Serve, as `weft adapter nomad` does.
func TestConformanceOverPlugin(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Run(t, sdktest.OverPlugin(func() *exec.Cmd {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), roleEnv+"=plugin")
		return cmd
	}), conformanceFixture)
}

func fastAdapter() *Adapter {
	a := newAdapter(hclog.NewNullLogger())
	a.settle, a.minBackoff, a.maxBackoff = 20*time.Millisecond, 50*time.Millisecond, time.Second
	return a
}

// With event_stream = false the adapter learns changes from blocking
// queries alone: the fallback it uses when the stream cannot be had.
func TestConformanceBlockingQueries(t *testing.T) {
	sdktest.Run(t, sdktest.InMemory(func() sdk.Adapter {
		return fastAdapter()
	}), func(t *testing.T) sdktest.Fixture {
		f := conformanceFixture(t)
		f.Good.Options[OptionEventStream] = "false"
		return f
	})
}
