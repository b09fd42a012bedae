package local

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/plugins/sdk"
	"github.com/weftmesh/weft/plugins/sdk/sdktest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestGIDs(t *testing.T) {
	for _, tc := range []struct {
		addr       string
		app, proxy uint32
		wantErr    bool
	}{
		{addr: "127.0.0.2", app: 2_000_000_004, proxy: 2_000_000_005},
		{addr: "127.0.0.3", app: 2_000_000_006, proxy: 2_000_000_007},
		{addr: "127.1.0.0", app: 2_000_131_072, proxy: 2_000_131_073},
		{addr: "127.255.255.254", app: 2_033_554_428, proxy: 2_033_554_429},
		{addr: "10.0.0.2", wantErr: true},
		{addr: "::1", wantErr: true},
		{addr: "::ffff:127.0.0.2", wantErr: true},
		{addr: "127.0.0.2:80", wantErr: true},
		{addr: "", wantErr: true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			app, proxy, err := gids(tc.addr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("gids(%q) error %v, want error %v", tc.addr, err, tc.wantErr)
			}
			if !tc.wantErr && (app != tc.app || proxy != tc.proxy) {
				t.Errorf("gids(%q) = %d, %d; want %d, %d", tc.addr, app, proxy, tc.app, tc.proxy)
			}
			if !tc.wantErr && app >= 1<<31 {
				t.Errorf("gid %d is not below 2^31", app)
			}
		})
	}
}

// The ruleset is compared with a golden file; go test -update rewrites it.
func TestRenderRuleset(t *testing.T) {
	for _, tc := range []struct {
		name  string
		insts []guardedInstance
	}{
		{name: "empty"},
		{name: "two", insts: []guardedInstance{
			{ID: "api-0", Address: "127.0.0.2", AppPort: 8080, Open: []int{15001, 15000}, AppGID: 2_000_000_004, ProxyGID: 2_000_000_005},
			{ID: "store-0", Address: "127.0.0.3", AppPort: 8080, Open: []int{15001, 15000}, AppGID: 2_000_000_006, ProxyGID: 2_000_000_007},
		}},
		{name: "edge", insts: []guardedInstance{
			{ID: "frontend-0", Address: "127.0.0.4", AppPort: 8080, Edge: true, Open: []int{15001, 15000}, AppGID: 2_000_000_008, ProxyGID: 2_000_000_009},
		}},
		{name: "egress", insts: []guardedInstance{
			{ID: "web-0", Address: "127.0.0.5", AppPort: 8080, Egress: true, Open: []int{15001, 15000}, AppGID: 2_000_000_010, ProxyGID: 2_000_000_011},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderRuleset("weft_local_42", tc.insts)
			path := filepath.Join("testdata", "guard", tc.name+".nft")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("ruleset differs from %s:\n%s", path, got)
			}
			// Never a rule that matches all loopback traffic: every rule
			// names an exact address and port.
			for _, line := range strings.Split(got, "\n") {
				if strings.Contains(line, "meta skgid 2000000010 ") {
					// Egress deny: every connection of one app but to
					// its own address.
					if !strings.HasPrefix(strings.TrimSpace(line), "meta skgid 2000000010 ") || (strings.Contains(line, "ip daddr") && !strings.Contains(line, "ip daddr != 127.0.0.5 ")) {
						t.Errorf("egress rule not bound to the app's gid and own address: %s", line)
					}
					continue
				}
				if strings.Contains(line, "reject") && (!strings.Contains(line, "ip daddr 127.") || !strings.Contains(line, "dport") || strings.Contains(line, "/")) {
					t.Errorf("rule without an exact address and port: %s", line)
				}
			}
		})
	}
}

func TestGroupsInRange(t *testing.T) {
	etc := "root:x:0:\nusers:x:100:\nnogroup:x:65534:\nlow:x:1999999999:\nfirst:x:2000000000:\nlast:x:2033554431:\nabove:x:2033554432:\nbad:x:notanumber:\n#comment\n\n"
	got := groupsInRange(etc)
	if want := []string{"first (2000000000)", "last (2033554431)"}; !slices.Equal(got, want) {
		t.Errorf("groupsInRange = %v, want %v", got, want)
	}
	if _, proxy, _ := gids("127.255.255.255"); proxy != gidLast {
		t.Errorf("gidLast %d, want the sidecar gid of 127.255.255.255 (%d)", gidLast, proxy)
	}
}

func TestStaleTables(t *testing.T) {
	listing := "table inet weft_local_100\ntable inet weft_local_200\ntable ip filter\ntable inet weft_local_x\ntable inet weft_local_" +
		strconv.Itoa(os.Getpid()) + "\ntable inet other_300\ntable ip weft_local_300\n"
	got := staleTables(listing, func(pid int) bool { return pid == 200 })
	if want := []string{"weft_local_100"}; !slices.Equal(got, want) {
		t.Errorf("staleTables = %v, want %v", got, want)
	}
}

func mustAppGID(t *testing.T, addr string) uint32 {
	t.Helper()
	app, _, err := gids(addr)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// needGuard skips a test that needs root and nft.
func needGuard(t *testing.T) string {
	t.Helper()
	nft, why := guardSupport()
	if why != "" {
		t.Skipf("the guard cannot run here (%s); CI runs as root with nftables installed", why)
	}
	return nft
}

// deleteTableAtEnd removes table when the test ends, even on failure.
func deleteTableAtEnd(t *testing.T, nft, table string) {
	t.Cleanup(func() { _ = exec.Command(nft, "delete", "table", "inet", table).Run() })
}

// dialAs connects to addr from a child process running with gid (no
// supplementary groups) and returns what it read, or an error saying why
// it could not connect.
func dialAs(t *testing.T, gid uint32, addr string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=dial", dialEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(os.Getuid()), Gid: gid, Groups: []uint32{}}}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// The assumption the guard rests on: a loopback connection passes the
// output hook with the connecting socket's gid in meta skgid, and a reset
// there makes connect fail at once.
func TestLoopbackOutputHookSeesSocketGID(t *testing.T) {
	nft := needGuard(t)
	l, err := net.Listen("tcp", "127.0.91.7:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serveGreeting(l, "hello")
	port := l.Addr().(*net.TCPAddr).Port
	table := fmt.Sprintf("weft_test_%d", os.Getpid())
	deleteTableAtEnd(t, nft, table)
	rs := fmt.Sprintf("table inet %s {\n chain output {\n  type filter hook output priority filter; policy accept;\n  ip daddr 127.0.91.7 tcp dport %d tcp flags & (syn | ack) == syn meta skgid != 2000999000 reject with tcp reset\n }\n}\n", table, port)
	cmd := exec.Command(nft, "-f", "-")
	cmd.Stdin = strings.NewReader(rs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	addr := l.Addr().String()
	if got, err := dialAs(t, 2000999000, addr); err != nil || got != "hello" {
		t.Errorf("from the allowed gid: %q, %v; want hello", got, err)
	}
	for _, gid := range []uint32{0, 2000999001} {
		start := time.Now()
		if got, err := dialAs(t, gid, addr); err == nil {
			t.Errorf("from gid %d: connected and read %q; want refused", gid, got)
		} else if !strings.Contains(err.Error(), "refused") {
			t.Errorf("from gid %d: %v; want connection refused", gid, err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("from gid %d: refusal took %v; want a reset, not a timeout", gid, d)
		}
	}
	// The rule names one address: the same port elsewhere is untouched.
	l2, err := net.Listen("tcp", net.JoinHostPort("127.0.91.8", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go serveGreeting(l2, "other")
	if got, err := dialAs(t, 0, l2.Addr().String()); err != nil || got != "other" {
		t.Errorf("another address: %q, %v; want other", got, err)
	}
}

// The adapter with its guard: the app port takes connections from the
// instance's sidecar and app only, the outbound ports from its app only;
// the snapshot says guard; an edge service's app port is open (its
// outbound ports are not) and it says none; Close removes the table.
func TestGuardedInstances(t *testing.T) {
	nft := needGuard(t)
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 2, "web": 1}, "")
	a := newTestAdapter(t)
	deleteTableAtEnd(t, nft, tablePrefix+strconv.Itoa(os.Getpid()))
	req := s.request(t)
	req.Options[OptionIsolation] = isolationGuard
	req.Options[OptionEdge] = "web"
	sdktest.ConfigureOK(t, a, req)
	events := watch(t, a)
	ev := sdktest.WaitFor(t, events, "every instance passing", waitTimeout, allPassing("api-0", "api-1", "web-0"))
	s.waitReady(t, "api-0", 1)
	s.waitReady(t, "api-1", 1)
	s.waitReady(t, "web-0", 1)

	api0, api1, web0 := s.prefix+"2", s.prefix+"3", s.prefix+"4"
	app0, proxy0, _ := gids(api0)
	app1, proxy1, _ := gids(api1)
	appPort := func(addr string) string { return net.JoinHostPort(addr, strconv.Itoa(s.port)) }
	outPort := func(addr string) string { return net.JoinHostPort(addr, strconv.Itoa(fakeOutbound)) }

	for _, tc := range []struct {
		name string
		gid  uint32
		addr string
		ok   bool
	}{
		{"api-0's sidecar to its app", proxy0, appPort(api0), true},
		{"api-0's app to its own port", app0, appPort(api0), true},
		{"another process to api-0's app", 0, appPort(api0), false},
		{"api-1's sidecar to api-0's app", proxy1, appPort(api0), false},
		{"api-1's app to api-0's app", app1, appPort(api0), false},
		{"api-0's app to its outbound port", app0, outPort(api0), true},
		{"api-0's sidecar to its outbound port", proxy0, outPort(api0), false},
		{"another process to api-0's outbound port", 0, outPort(api0), false},
		{"api-1's app to api-0's outbound port", app1, outPort(api0), false},
		{"another process to the edge web-0's app", 0, appPort(web0), true},
		{"another process to the edge web-0's outbound port", 0, outPort(web0), false},
		{"the edge web-0's app to its outbound port", mustAppGID(t, web0), outPort(web0), true},
		{"another process to api-0's sidecar admin port", 0, net.JoinHostPort(api0, "15000"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dialAs(t, tc.gid, tc.addr)
			if tc.ok && err != nil {
				t.Errorf("gid %d to %s: %v; want a connection", tc.gid, tc.addr, err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "refused")) {
				t.Errorf("gid %d to %s: read %q, error %v; want connection refused", tc.gid, tc.addr, got, err)
			}
		})
	}

	for _, in := range ev.Snapshot.Instances {
		want := model.IsolationGuard
		if in.Service == "web" {
			want = model.IsolationNone
		}
		if in.Isolation != want {
			t.Errorf("%s: isolation %q, want %q", in.ID, in.Isolation, want)
		}
	}
	for _, pid := range pids(ev) {
		p, _ := strconv.Atoi(pid[0])
		if g, err := procGID(p); err != nil || g < gidBase {
			t.Errorf("app pid %d runs with gid %d (%v), want one of the guard's", p, g, err)
		}
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nft, "list", "table", "inet", tablePrefix+strconv.Itoa(os.Getpid())).CombinedOutput(); err == nil {
		t.Errorf("the table outlived Close:\n%s", out)
	}
}

// Without root or nft, or with isolation = none, every instance says none
// and a warning says why.
func TestIsolationOffIsLoud(t *testing.T) {
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 1}, "")
	a := newTestAdapter(t)
	sdktest.ConfigureOK(t, a, s.request(t)) // isolation = none
	events := watch(t, a)
	ev := sdktest.WaitFor(t, events, "api-0 passing", waitTimeout, allPassing("api-0"))
	if got := ev.Snapshot.Instances[0].Isolation; got != model.IsolationNone {
		t.Errorf("isolation %q, want none", got)
	}
	found := false
	for _, d := range ev.Diagnostics {
		if d.Summary == "Isolation off" && d.Severity == sdk.SeverityWarning && strings.Contains(d.Detail, "X-Weft-Caller") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning 'Isolation off' in %+v", ev.Diagnostics)
	}
}

func TestIsolationOptions(t *testing.T) {
	for _, tc := range []struct {
		name, key, value, wantErr string
	}{
		{name: "bad isolation", key: OptionIsolation, value: "netns", wantErr: "Invalid isolation"},
		{name: "empty isolation", key: OptionIsolation, value: "", wantErr: "Invalid isolation"},
		{name: "upper case", key: OptionIsolation, value: "GUARD", wantErr: "Invalid isolation"},
		{name: "bad edge", key: OptionEdge, value: "web,Api", wantErr: "Invalid edge"},
		{name: "edge with spaces", key: OptionEdge, value: " web , api "},
		{name: "guard", key: OptionIsolation, value: "guard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t)
			s.writeWorkloads(t, map[string]int{"api": 1}, "")
			req := s.request(t)
			delete(req.Options, OptionIsolation)
			req.Options[tc.key] = tc.value
			resp, err := newTestAdapter(t).Configure(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			var errs []string
			for _, d := range resp.Diagnostics {
				if d.Severity == sdk.SeverityError {
					errs = append(errs, d.Summary)
				}
			}
			if got := strings.Join(errs, ","); got != tc.wantErr {
				t.Errorf("errors %q, want %q", got, tc.wantErr)
			}
		})
	}
}

// A new guard deletes the table of a dead adapter, in the transaction of
// its first rules, and keeps that of a live one.
func TestGuardRemovesStaleTables(t *testing.T) {
	nft := needGuard(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })
	deadTable := tablePrefix + strconv.Itoa(dead.Process.Pid)
	liveTable := tablePrefix + strconv.Itoa(live.Process.Pid)
	for _, tb := range []string{deadTable, liveTable} {
		deleteTableAtEnd(t, nft, tb)
		if out, err := exec.Command(nft, "add", "table", "inet", tb).CombinedOutput(); err != nil {
			t.Fatalf("nft add table: %v: %s", err, out)
		}
	}
	g, err := newGuard(nft)
	if err != nil {
		t.Fatal(err)
	}
	deleteTableAtEnd(t, nft, g.table)
	if err := g.setSpecs(nil, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(nft, "list", "table", "inet", deadTable).Run(); err == nil {
		t.Errorf("the table %s of a dead adapter is still there", deadTable)
	}
	if err := exec.Command(nft, "list", "table", "inet", liveTable).Run(); err != nil {
		t.Errorf("the table %s of a live process was deleted", liveTable)
	}
	if err := g.close(); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(nft, "list", "table", "inet", g.table).Run(); err == nil {
		t.Errorf("the guard's table %s outlived close", g.table)
	}
}

// A process of an earlier run is adopted only if it runs with the gid the
// guard would give it now; otherwise it is replaced (and so guarded).
func TestAdoptionNeedsTheGuardGID(t *testing.T) {
	needGuard(t)
	spec := instanceSpec{ID: "api-0", Address: "127.0.93.2"}
	want, _, _ := gids(spec.Address)
	for _, tc := range []struct {
		name string
		gid  uint32
		ok   bool
	}{
		{"the guard's gid", want, true},
		{"root's group", 0, false},
		{"the sidecar's gid", want + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sleep", "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(os.Getuid()), Gid: tc.gid, Groups: []uint32{}}}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			r := newRunner(runnerConfig{Cred: processCred(true)}, nil)
			if got := r.gidOK(spec, "app", cmd.Process.Pid); got != tc.ok {
				t.Errorf("gidOK for a process with gid %d = %v, want %v", tc.gid, got, tc.ok)
			}
		})
	}
	// Without the guard, any gid is adopted.
	if !newRunner(runnerConfig{}, nil).gidOK(spec, "app", os.Getpid()) {
		t.Error("without Cred, gidOK refused")
	}
}

// An instance being scaled away keeps its rules until its processes have
// stopped: its app, slow to exit, is never open.
func TestGuardHoldsWhileAnInstanceStops(t *testing.T) {
	nft := needGuard(t)
	s := newSetup(t)
	s.writeWorkloads(t, map[string]int{"api": 2}, "")
	// The apps ignore SIGTERM: they live until SIGKILL, a grace later.
	ignoring := func() {
		t.Helper()
		b := strings.Replace(mustRead(t, s.file), `"`+helperApp+`"`, `"`+helperApp+`", "ignore-term"`, 1)
		if err := os.WriteFile(s.file, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ignoring()
	a := newTestAdapter(t)
	a.grace = 5 * time.Second
	deleteTableAtEnd(t, nft, tablePrefix+strconv.Itoa(os.Getpid()))
	req := s.request(t)
	req.Options[OptionIsolation] = isolationGuard
	sdktest.ConfigureOK(t, a, req)
	events := watch(t, a)
	ev := sdktest.WaitFor(t, events, "both passing", waitTimeout, allPassing("api-0", "api-1"))
	s.waitReady(t, "api-1", 1)
	pid, _ := strconv.Atoi(pids(ev)["api-1"][0])
	app := net.JoinHostPort(s.prefix+"3", strconv.Itoa(s.port))

	s.writeWorkloads(t, map[string]int{"api": 1}, "")
	ignoring()
	sdktest.WaitFor(t, events, "api-1 gone from the snapshot", waitTimeout, func(ev sdk.WatchEvent) bool { return len(ev.Snapshot.Instances) == 1 })
	got, err := dialAs(t, 0, app)
	if !alive(pid) {
		t.Fatalf("api-1's app (pid %d) exited before the probe: the test proves nothing; raise the grace", pid)
	}
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("api-1's app, stopping, took a connection from another process: %q, %v", got, err)
	}
}

// A shared proxy's group is admitted to the app ports of the instances it
// serves, in place of their sidecars' groups, and to no other's: an
// application proxy for api (running with the sidecar group of api-0's
// address) reaches api-0's and api-1's apps, not web-0's.
func TestGuardAdmitsTheSharedProxy(t *testing.T) {
	specs := []instanceSpec{
		{ID: "api-0", Service: "api", Address: "127.0.0.2", Port: 8080, ProxyMode: ProxyModeApplication},
		{ID: "api-1", Service: "api", Address: "127.0.0.3", Port: 8080, ProxyMode: ProxyModeApplication},
		{ID: "web-0", Service: "web", Address: "127.0.0.4", Port: 8080, ProxyAddr: "127.0.0.4"},
	}
	withSharedProxies(specs, planInput{Node: "n", ProxyPath: "/bin/weft-proxy"})
	g := &guard{specs: specs}
	_, shared, _ := gids("127.0.0.2")
	_, web, _ := gids("127.0.0.4")
	want := map[string]uint32{"api-0": shared, "api-1": shared, "web-0": web}
	got := g.instancesLocked()
	if len(got) != 3 {
		t.Fatalf("%d guarded instances, want 3: %+v", len(got), got)
	}
	for _, in := range got {
		if in.ProxyGID != want[in.ID] {
			t.Errorf("%s: app port admits proxy gid %d, want %d", in.ID, in.ProxyGID, want[in.ID])
		}
		if app, _, _ := gids(in.Address); in.AppGID != app {
			t.Errorf("%s: app gid %d, want its own %d", in.ID, in.AppGID, app)
		}
	}
	c, err := processCred(true)(sharedSlotSpec(specs[1]), "proxy")
	if err != nil || c.Gid != shared {
		t.Errorf("api's application proxy runs with %+v (%v), want gid %d", c, err, shared)
	}
}
