package nomad

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

var record = flag.Bool("record", false, "record testdata/state.json from a real Nomad agent")

// TestRecord records what a real Nomad 1.6.1 answers for a few jobs that
// cover translate's cases, as testdata/state.json (go test -run TestRecord
// -record). Without -record it is skipped: the translate tests read the
// recording.
func TestRecord(t *testing.T) {
	if !*record {
		t.Skip("records testdata with -record")
	}
	agent := sharedAgent(t)
	agent.Run(t, sleepJob("default", "web", 2))
	agent.Run(t, `job "plain" {
  group "g" {
    network {
      port "http" {}
    }
    service {
      name     = "plain"
      provider = "nomad"
      port     = "http"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
    }
  }
}`)
	agent.Run(t, `job "shop" {
  group "front" {
    network {
      port "http" {}
      port "mesh" {}
      port "upstream_my_api" {}
      port "cart_mesh" {}
    }
    service {
      name     = "shop"
      provider = "nomad"
      port     = "http"
      tags     = ["canary-ok"]
    }
    service {
      name     = "cart"
      provider = "nomad"
      port     = "http"
      tags     = ["weft_mesh_port=cart_mesh"]
    }
    service {
      name     = "broken"
      provider = "nomad"
      port     = "http"
      tags     = ["weft_mesh_port=nope"]
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
      service {
        name     = "shop-admin"
        provider = "nomad"
        port     = "http"
      }
    }
  }
}`)
	agent.Running(t, "default", "web", 2, time.Minute)
	agent.Running(t, "default", "plain", 1, time.Minute)
	agent.Running(t, "default", "shop", 1, time.Minute)

	st := recordState(t, agent)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "state.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("recorded %d registrations and %d allocations\n", len(st.Services), len(st.Allocs))
}

// recordState reads what a configured adapter reads from agent, for the
// recording tests.
func recordState(t *testing.T, agent *nomadtest.Agent) State {
	t.Helper()
	a := fastAdapter()
	a.log = hclog.NewNullLogger()
	resp, err := a.Configure(context.Background(), &sdk.ConfigureRequest{Source: agent.Addr, Options: map[string]string{OptionTokenFile: agent.TokenFile(t)}})
	if err != nil || sdk.HasErrors(resp.Diagnostics) {
		t.Fatalf("Configure: %v %v", err, resp)
	}
	cfg, _ := a.config()
	st, err := fetchState(context.Background(), cfg, newCheckCache())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
