package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/test/harness"
)

// memPolicy: one service whose instances call one another.
const memPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}
service "app" {
  protocol = "http"
  binding "local" { name = "app" }
  upstream "app" { local_port = 9001 }
}
intention "app" "app" { action = "allow" }
`

// BenchmarkProxyMemory measures what the proxies of one node cost: n
// instances of one service, each with its own sidecar or all served by one
// node proxy, on the local adapter. Reported once the mesh has converged
// (every configuration acknowledged) and each instance has made a call
// through its proxy: proxy processes, their total resident memory and the
// memory per instance. Run it with
//
//	go test -run '^$' -bench BenchmarkProxyMemory -benchtime 1x ./test/e2e/
func BenchmarkProxyMemory(b *testing.B) {
	for _, mode := range []string{"sidecar", "node"} {
		for _, n := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				app := filepath.Join(binDir, "weft-demo-app")
				workloads := harness.Workload("app", app, "instances = "+strconv.Itoa(n),
					`proxy_mode = "`+mode+`"`, `env = { UPSTREAM_APP = "http://${HOST}:9001" }`)
				m := harness.StartLocalMesh(b, binDir, b.TempDir(), memPolicy, workloads, "127.0.118.2",
					"--adapter-option", "local.isolation=none")
				s := m.Controller.WaitFor(b, "the mesh to converge", 180*time.Second, harness.Converged(n))
				for _, in := range s.Instances {
					harness.Eventually(b, in.ID+" calling app", 30*time.Second, func() error {
						_, err := harness.CallThrough(in.Address+":8080", "/call/app")
						return err
					})
				}
				reportProxyMemory(b, m, n)
			})
		}
	}
}

// BenchmarkProxyMemoryPerApplication compares the three models on one
// node with several applications: 5 services of 2 instances each, every
// instance calling its own service, with a sidecar per instance, a proxy
// per application (5 processes) or one node proxy. Reported as
// BenchmarkProxyMemory does. Run it with
//
//	go test -run '^$' -bench BenchmarkProxyMemoryPerApplication -benchtime 1x ./test/e2e/
func BenchmarkProxyMemoryPerApplication(b *testing.B) {
	const services, perService = 5, 2
	var policy strings.Builder
	policy.WriteString("mesh {\n  trust_domain   = \"weft.test\"\n  default_action = \"deny\"\n}\n")
	for i := range services {
		fmt.Fprintf(&policy, "service \"s%d\" {\n  protocol = \"http\"\n  binding \"local\" { name = \"s%d\" }\n  upstream \"s%d\" { local_port = 9001 }\n}\nintention \"s%d\" \"s%d\" { action = \"allow\" }\n", i, i, i, i, i)
	}
	for _, mode := range []string{"sidecar", "application", "node"} {
		b.Run(mode, func(b *testing.B) {
			app := filepath.Join(binDir, "weft-demo-app")
			var workloads string
			for i := range services {
				workloads += harness.Workload("s"+strconv.Itoa(i), app, "instances = "+strconv.Itoa(perService),
					`proxy_mode = "`+mode+`"`, `env = { UPSTREAM_SELF = "http://${HOST}:9001" }`)
			}
			n := services * perService
			m := harness.StartLocalMesh(b, binDir, b.TempDir(), policy.String(), workloads, "127.0.119.2",
				"--adapter-option", "local.isolation=none")
			s := m.Controller.WaitFor(b, "the mesh to converge", 180*time.Second, harness.Converged(n))
			for _, in := range s.Instances {
				harness.Eventually(b, in.ID+" calling its service", 30*time.Second, func() error {
					_, err := harness.CallThrough(in.Address+":8080", "/call/self")
					return err
				})
			}
			reportProxyMemory(b, m, n)
		})
	}
}

// latencyPolicy: client calls server.
const latencyPolicy = `
mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}
service "client" {
  protocol = "http"
  binding "local" { name = "client" }
  upstream "server" { local_port = 9001 }
}
service "server" {
  protocol = "http"
  binding "local" { name = "server" }
}
intention "client" "server" { action = "allow" }
`

// BenchmarkProxyLatency is one HTTP request at a time from the client's
// outbound listener, as its app would send it, through the client's proxy
// and the server's to the server's app, and back: with a sidecar each, and
// with both instances on one node proxy. ns/op is the round trip.
//
//	go test -run '^$' -bench BenchmarkProxyLatency -benchtime 2000x ./test/e2e/
func BenchmarkProxyLatency(b *testing.B) {
	for _, mode := range []string{"sidecar", "node"} {
		b.Run(mode, func(b *testing.B) {
			app := filepath.Join(binDir, "weft-demo-app")
			m := harness.StartLocalMesh(b, binDir, b.TempDir(), latencyPolicy,
				harness.Workload("client", app, `proxy_mode = "`+mode+`"`)+harness.Workload("server", app, `proxy_mode = "`+mode+`"`),
				"127.0.119.2", "--adapter-option", "local.isolation=none")
			s := m.Controller.WaitFor(b, "the mesh to converge", 90*time.Second, harness.Converged(2))
			url := "http://" + s.Address("client") + ":9001/"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			get := func() error {
				resp, err := client.Get(url)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				return err
			}
			harness.Eventually(b, "the first call", 30*time.Second, get)
			b.ResetTimer()
			for range b.N {
				if err := get(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportProxyMemory waits until the adapter's snapshot names the pid of
// every instance's proxy (n instances), and reports the distinct proxy
// processes and their summed RSS, in all and per instance.
func reportProxyMemory(b *testing.B, m *harness.LocalMesh, n int) {
	b.Helper()
	s := m.Controller.WaitFor(b, "every proxy's pid", 30*time.Second, func(s *harness.Status) bool {
		for _, in := range s.Instances {
			if in.Labels["proxy_pid"] == "" {
				return false
			}
		}
		return len(s.Instances) == n
	})
	pids := map[string]bool{}
	for _, in := range s.Instances {
		pids[in.Labels["proxy_pid"]] = true
	}
	total := 0
	for pid := range pids {
		total += rssKiB(b, pid)
	}
	for range b.N {
	}
	b.ReportMetric(float64(len(pids)), "proxies")
	b.ReportMetric(float64(total)/1024, "proxy-MiB")
	b.ReportMetric(float64(total)/1024/float64(n), "MiB/instance")
}
