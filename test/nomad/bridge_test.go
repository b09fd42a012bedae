package nomad

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"golang.org/x/sys/unix"

	nomadadapter "github.com/weftmesh/weft/adapters/nomad"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins"
	"github.com/weftmesh/weft/test/harness"
	"github.com/weftmesh/weft/test/nomad/nomadtest"
)

// bridgePolicy is the policy of TestBridgeIsolation: frontend calls api;
// api has an upstream too (frontend, which it may not call) so that both
// bridge-mode sidecars have an outbound listener for weft check to probe;
// edge, a host-mode job, calls api.
const bridgePolicy = `mesh {
  trust_domain   = "weft.test"
  default_action = "deny"
}

service "frontend" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "frontend"
  }
  upstream "api" {
    local_port = 9001
  }
}

service "api" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "api"
  }
  upstream "frontend" {
    local_port = 9002
  }
}

service "edge" {
  protocol = "http"
  binding "nomad" {
    namespace = "default"
    job       = "edge"
  }
  upstream "api" {
    local_port = 9003
  }
}

intention "frontend" "api" {
  action = "allow"
}

intention "edge" "api" {
  action = "allow"
}
`

// bridgeJob is a job file with the weft stanza and nothing about
// networking: weft nomad render makes it a bridge-mode group. The app
// listens on 127.0.0.1:appPort inside its allocation; upstreams are on
// 127.0.0.1:<local_port> there.
func bridgeJob(name string, appPort int, upstreams map[string]int) string {
	var ups, env strings.Builder
	for u, p := range upstreams {
		fmt.Fprintf(&ups, "      upstream %q {\n        local_port = %d\n      }\n", u, p)
		fmt.Fprintf(&env, "        UPSTREAM_%s = \"http://127.0.0.1:%d\"\n", strings.ToUpper(u), p)
	}
	return fmt.Sprintf(`job %[1]q {
  group %[1]q {
    network {
      port "app" {
        to = %[2]d
      }
    }
    weft {
%[3]s      sidecar {
        kill_timeout = "3s"
      }
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = %[5]q
      }
      env {
        HOST          = "127.0.0.1"
        PORT          = "%[2]d"
        WEFT_SERVICE  = %[1]q
        WEFT_INSTANCE = "${NOMAD_ALLOC_ID}/%[1]s"
%[4]s      }
      kill_timeout = "3s"
      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
`, name, appPort, ups.String(), env.String(), filepath.Join(binDir, "weft-demo-app"))
}

// inNetns runs f on an OS thread that joined the network namespace at
// path (one of the test agent's allocations): sockets f opens live there.
// The thread is never given back to the Go scheduler.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("opening network namespace %s: %w", path, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("joining network namespace %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// getInNetns sends GET url over a connection opened inside the network
// namespace at path.
func getInNetns(path, addr, urlPath string) ([]byte, error) {
	var conn net.Conn
	if err := inNetns(path, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", urlPath, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return b, nil
}

// refused dials addr from the host's network namespace and says how that
// ended: nil if a connection was made.
func dialHost(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// unreachable reports whether err is a refusal or an unreachable
// address: nothing listens there for the dialer.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// TestBridgeIsolation runs two jobs rendered by weft nomad render with
// the default, bridge networking on a real Nomad 1.6.1 agent: the app and
// the outbound listeners cannot be reached from the host, a call through
// the mesh works, and the adapter reports isolation netns.
func TestBridgeIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nomad with bridge networking, a controller and sidecars; skipped with -short")
	}
	agent := nomadtest.Start(t)
	if err := agent.BridgeReady(); err != nil {
		t.Fatalf("this machine cannot run Nomad bridge networking (make nomad installs what it can): %v", err)
	}
	dir := t.TempDir()
	e := startMesh(t, agent, bridgePolicy,
		// The dev agent's node address is 127.0.0.1, which a sidecar in an
		// allocation's namespace cannot reach (it is the namespace's own
		// loopback there): callers dial the allocations' own addresses.
		"--adapter-option", "nomad.advertise=alloc")
	ctl, listen, roots := e.ctl, e.listen, e.roots

	// Ports the host itself does not listen on, so that a connection the
	// host makes there can only reach an allocation if it leaked.
	appPort := harness.FreePort(t)
	outPort := harness.FreePort(t)
	for _, j := range []struct {
		name string
		ups  map[string]int
	}{{"api", map[string]int{"frontend": outPort}}, {"frontend", map[string]int{"api": outPort}}} {
		job, warnings := renderJob(t, filepath.Join(dir, j.name+".nomad.hcl"), bridgeJob(j.name, appPort, j.ups), listen, roots)
		if warnings != "" {
			t.Errorf("weft nomad render %s warned:\n%s", j.name, warnings)
		}
		agent.Run(t, job)
	}
	apiAlloc := agent.Running(t, "default", "api", 1, 2*time.Minute)[0]
	frontAlloc := agent.Running(t, "default", "frontend", 1, 2*time.Minute)[0]
	netns := func(a *api.AllocationListStub) string { return filepath.Join("/var/run/netns", a.ID) }
	// With advertise = alloc the adapter leaves a bridge allocation out
	// until Nomad reports its own address (advertised at the node's address
	// for a moment, a sidecar that joined then would hold the wildcard
	// address and could not move: adapters/nomad TestAdvertiseAllocWaitsForAddress).
	// Wait until the controller has both, at their allocations' addresses.
	ctl.WaitFor(t, "both bridge-mode instances advertised at their allocations' addresses", 2*time.Minute, func(s *harness.Status) bool {
		if len(s.Instances) != 2 {
			return false
		}
		for _, in := range s.Instances {
			if a, err := netip.ParseAddr(in.Address); err != nil || a.IsLoopback() {
				return false
			}
		}
		return true
	})
	// The sidecars dial the controller at 127.0.0.1 inside their own
	// namespaces: carry that to the controller on the host's loopback
	// (a real controller has an address the allocations route to).
	for _, a := range []*api.AllocationListStub{apiAlloc, frontAlloc} {
		forwardIntoNetns(t, netns(a), listen, listen)
	}
	ctl.WaitFor(t, "two bridge-mode instances with sidecars that acknowledged their config", 2*time.Minute, converged(2))

	allocIP := func(a *api.AllocationListStub) string {
		full, _, err := agent.Client().Allocations().Info(a.ID, nil)
		if err != nil || full.NetworkStatus == nil || full.NetworkStatus.Address == "" {
			t.Fatalf("allocation %s's bridge address: %v %+v", a.ID, err, full)
		}
		return full.NetworkStatus.Address
	}
	apiIP, frontIP := allocIP(apiAlloc), allocIP(frontAlloc)
	t.Logf("api allocation %s at %s, frontend %s at %s; app port %d, outbound port %d", apiAlloc.ID[:8], apiIP, frontAlloc.ID[:8], frontIP, appPort, outPort)

	t.Run("only the mesh port is published", func(t *testing.T) {
		for _, a := range []*api.AllocationListStub{apiAlloc, frontAlloc} {
			var labels []string
			for _, p := range a.AllocatedResources.Shared.Ports {
				labels = append(labels, fmt.Sprintf("%s(%d->%d)", p.Label, p.Value, p.To))
			}
			if len(labels) != 1 || !strings.HasPrefix(labels[0], "mesh(") {
				t.Errorf("allocation %s publishes %v, want only mesh", a.ID, labels)
			}
			if m := a.AllocatedResources.Shared.Networks[0].Mode; m != "bridge" {
				t.Errorf("allocation %s network mode %q, want bridge", a.ID, m)
			}
		}
	})

	t.Run("a call through the mesh carries the caller's identity", func(t *testing.T) {
		var r harness.DemoAnswer
		harness.Eventually(t, "frontend -> api through the sidecars, from inside the frontend's allocation", 30*time.Second, func() error {
			b, err := getInNetns(netns(frontAlloc), net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort)), "/call/api")
			if err != nil {
				return err
			}
			return json.Unmarshal(b, &r)
		})
		if r.Response.Service != "api" || r.Response.Caller != "spiffe://weft.test/ns/default/svc/frontend" {
			t.Errorf("api answered %+v: want service api, called by frontend's SPIFFE ID", r.Response)
		}
	})

	t.Run("the app and the outbound listener are unreachable from the host", func(t *testing.T) {
		// Positive controls first: the mesh port answers at the address
		// callers dial and inside the namespace, and the app and the
		// outbound listener are there, on the allocation's loopback.
		meshHost := net.JoinHostPort("127.0.0.1", strconv.Itoa(port(apiAlloc, "mesh")))
		if err := dialHost(meshHost); err != nil {
			t.Fatalf("the api's published mesh port %s: %v", meshHost, err)
		}
		if err := dialHost(net.JoinHostPort(apiIP, "15001")); err != nil {
			t.Fatalf("the api's mesh port at its allocation address: %v", err)
		}
		for _, c := range []struct{ ns, addr string }{
			{netns(apiAlloc), net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort))},
			{netns(frontAlloc), net.JoinHostPort("127.0.0.1", strconv.Itoa(outPort))},
		} {
			if err := inNetns(c.ns, func() error { return dialHost(c.addr) }); err != nil {
				t.Fatalf("inside %s, %s: %v (the control: it should be listening there)", c.ns, c.addr, err)
			}
		}
		for _, c := range []struct{ what, addr string }{
			{"api app port on the host's loopback", net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort))},
			{"api app port at the api allocation's address", net.JoinHostPort(apiIP, strconv.Itoa(appPort))},
			{"frontend app port at the frontend allocation's address", net.JoinHostPort(frontIP, strconv.Itoa(appPort))},
			{"frontend outbound port on the host's loopback", net.JoinHostPort("127.0.0.1", strconv.Itoa(outPort))},
			{"frontend outbound port at the frontend allocation's address", net.JoinHostPort(frontIP, strconv.Itoa(outPort))},
			{"api outbound port at the api allocation's address", net.JoinHostPort(apiIP, strconv.Itoa(outPort))},
			{"api admin port at the api allocation's address", net.JoinHostPort(apiIP, "15000")},
		} {
			err := dialHost(c.addr)
			if err == nil {
				t.Errorf("%s (%s): a connection from the host was accepted", c.what, c.addr)
			} else if !unreachable(err) {
				t.Errorf("%s (%s): %v, want refused or unreachable", c.what, c.addr, err)
			} else {
				t.Logf("%s (%s): %v", c.what, c.addr, err)
			}
		}
	})

	t.Run("the adapter reports isolation netns", func(t *testing.T) {
		// With the default advertise = host: callers dial the published
		// host port; the sidecar binds the port inside the namespace.
		a := nomadadapter.New()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := a.Configure(ctx, &plugins.ConfigureRequest{Source: agent.Addr,
			Options: map[string]string{"token_file": agent.TokenFile(t), "event_stream": "false"}}); err != nil {
			t.Fatal(err)
		}
		events := make(chan plugins.WatchEvent, 4)
		go a.Watch(ctx, &plugins.WatchRequest{}, events)
		var ins []model.Instance
		for len(ins) != 2 {
			select {
			case ev := <-events:
				ins = ev.Snapshot.Instances
			case <-ctx.Done():
				t.Fatalf("no snapshot with both instances: %v", ins)
			}
		}
		for _, in := range ins {
			alloc := apiAlloc
			if in.Service == "frontend" {
				alloc = frontAlloc
			}
			if in.Isolation != model.IsolationNetNS || in.MeshListen != "0.0.0.0:15001" ||
				in.Address != "127.0.0.1" || in.Ports[model.PortMesh] != port(alloc, "mesh") || in.Ports[model.PortApp] != appPort {
				t.Errorf("%s: isolation %q mesh_listen %q address %q ports %v; want netns, 0.0.0.0:15001, 127.0.0.1, mesh %d, app %d",
					in.ID, in.Isolation, in.MeshListen, in.Address, in.Ports, port(alloc, "mesh"), appPort)
			}
			if in.Service == "frontend" && in.Ports["upstream:api"] != outPort {
				t.Errorf("frontend ports %v: want upstream:api %d from its tag", in.Ports, outPort)
			}
		}
	})

	hp := func(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
	t.Run("weft check passes: every app, outbound and mesh port refuses outsiders", func(t *testing.T) {
		rep, stderr, code := ctl.Check(t, filepath.Join(binDir, "weft"))
		if code != 0 || !rep.OK {
			t.Errorf("weft check exited %d, ok %v; want 0, true\n%s", code, rep.OK, stderr)
		}
		if len(rep.Skipped) > 0 {
			t.Errorf("weft check skipped %v as not on this node", rep.Skipped)
		}
		for _, r := range rep.Results {
			if !r.OK {
				t.Errorf("%s %s (%s): %s", r.Instance, r.Address, r.Kind, r.Reason)
			}
		}
		// Every kind for both, probed where the node reaches each
		// allocation: its own address (the apps and the outbound
		// listeners are on the allocation's loopback; the host's
		// 127.0.0.1 is another place).
		for _, c := range []struct {
			alloc       *api.AllocationListStub
			service, ip string
			upstream    string
		}{{apiAlloc, "api", apiIP, "frontend"}, {frontAlloc, "frontend", frontIP, "api"}} {
			id := c.alloc.ID + "/" + c.service
			want := map[string]string{
				"app": hp(c.ip, appPort), "outbound " + c.upstream: hp(c.ip, outPort),
				"mesh-plaintext": hp(c.ip, 15001), "mesh-tls-no-cert": hp(c.ip, 15001),
			}
			got := rep.Rows(id)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: probes %v, want %v", id, got, want)
			}
		}
	})

	t.Run("with isolation off, weft check fails naming each open port", func(t *testing.T) {
		// edge opts out (network_mode = "host"): its app listens on the
		// node's 127.0.0.1, where the rendered job tells it to, and its
		// sidecar's outbound listener is there too.
		job, warnings := renderJob(t, filepath.Join(dir, "edge.nomad.hcl"), hostJob("edge", "api"), listen, roots)
		if !strings.Contains(warnings, "Isolation is off") {
			t.Errorf("weft nomad render edge (network_mode = host) did not warn that isolation is off:\n%s", warnings)
		}
		agent.Run(t, job)
		edgeAlloc := agent.Running(t, "default", "edge", 1, 2*time.Minute)[0]
		ctl.WaitFor(t, "the host-mode edge beside the bridge-mode instances, every sidecar acknowledged", 2*time.Minute, converged(3))
		edgeID := edgeAlloc.ID + "/edge"
		edgeApp, edgeOut := hp("127.0.0.1", port(edgeAlloc, "app")), hp("127.0.0.1", port(edgeAlloc, "upstream_api"))
		if m := edgeAlloc.AllocatedResources.Shared.Networks[0].Mode; m != "host" && m != "" {
			t.Fatalf("edge's network mode %q, want host", m)
		}

		// The control: the app listens there, and its sidecar's outbound
		// listener carries its call to api through the mesh.
		var r *harness.DemoAnswer
		harness.Eventually(t, "edge -> api through the sidecars, edge's app on the host's loopback", 30*time.Second, func() (err error) {
			r, err = call(edgeApp)
			return err
		})
		if r.Response.Service != "api" || r.Response.Caller != "spiffe://weft.test/ns/default/svc/edge" {
			t.Errorf("api answered %+v: want service api, called by edge's SPIFFE ID", r.Response)
		}

		rep, stderr, code := ctl.Check(t, filepath.Join(binDir, "weft"))
		if code != 1 || rep.OK {
			t.Errorf("weft check exited %d, ok %v; want 1, false", code, rep.OK)
		}
		failed := map[string]string{}
		for _, r := range rep.Results {
			if !r.OK {
				failed[r.Instance+" "+r.Kind] = r.Address
			}
		}
		want := map[string]string{edgeID + " app": edgeApp, edgeID + " outbound": edgeOut}
		if fmt.Sprint(failed) != fmt.Sprint(want) {
			t.Errorf("failed probes %v, want exactly %v", failed, want)
		}
		for _, addr := range []string{edgeApp, edgeOut} {
			if !strings.Contains(stderr, edgeID+" "+addr) {
				t.Errorf("weft check's error does not name %s %s:\n%s", edgeID, addr, stderr)
			}
		}
		if got := rep.Rows(edgeID); got["mesh-plaintext"] == "" || got["mesh-tls-no-cert"] == "" {
			t.Errorf("edge's probes %v: want its mesh port probed too", got)
		}

		iso := weftStatusIsolation(t, ctl)
		for id, want := range map[string]string{edgeID: "none", apiAlloc.ID + "/api": "netns", frontAlloc.ID + "/frontend": "netns"} {
			if iso[id] != want {
				t.Errorf("weft status: %s isolation %q, want %q", id, iso[id], want)
			}
		}
	})
}

// renderJob writes the job file src and runs weft nomad render on it for
// sidecars that join the controller at listen; it returns the job and
// what render printed on its standard error (its warnings).
func renderJob(t *testing.T, src, jobHCL, listen, roots string) (job, warnings string) {
	t.Helper()
	if err := os.WriteFile(src, []byte(jobHCL), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "weft"), "nomad", "render", "--controller", listen,
		"--trust-bundle", roots, "--proxy-command", filepath.Join(binDir, "weft-proxy"), src)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("weft nomad render %s: %v\n%s", src, err, stderr.String())
	}
	return string(out), stderr.String()
}

// forwardIntoNetns listens on addr inside the network namespace at path
// and carries every connection to target in the test's own namespace,
// until the test ends.
func forwardIntoNetns(t *testing.T, path, addr, target string) {
	t.Helper()
	var ln net.Listener
	if err := inNetns(path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("forwarding %s inside %s: %v", addr, path, err)
	}
	t.Cleanup(func() { ln.Close() })
	go harness.Serve(ln, func(c net.Conn) {
		d, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			return
		}
		defer d.Close()
		done := make(chan struct{}, 2)
		go func() { io.Copy(d, c); done <- struct{}{} }()
		go func() { io.Copy(c, d); done <- struct{}{} }()
		<-done
	})
}
