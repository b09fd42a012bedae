package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/api"
)

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	other := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EPERM)}
	for _, tc := range []struct {
		name   string
		kind   string
		o      outcome
		ok     bool
		reason string
	}{
		{"app refused", kindApp, outcome{dialErr: refused}, true, "connection refused"},
		{"app reset", kindApp, outcome{dialErr: reset}, true, "connection reset"},
		{"app dropped", kindApp, outcome{dialErr: timeout}, true, "dropped"},
		{"app unknown dial error", kindApp, outcome{dialErr: other}, false, "cannot tell"},
		{"app accepted and silent", kindApp, outcome{readErr: os.ErrDeadlineExceeded}, false, "open: accepted"},
		{"app accepted and closed at once", kindApp, outcome{readErr: io.EOF}, false, "open: accepted"},
		{"app accepted and talked", kindApp, outcome{read: []byte("HTTP/1.1 200 OK")}, false, `"HTTP/1.1 200 OK"`},
		{"outbound refused", kindOutbound, outcome{dialErr: refused}, true, "connection refused"},
		{"outbound accepted", kindOutbound, outcome{readErr: io.EOF}, false, "outbound listener"},
		{"mesh down", kindMeshText, outcome{dialErr: refused}, false, "is the sidecar running"},
		{"mesh silent to plaintext", kindMeshText, outcome{readErr: io.EOF}, true, "no answer"},
		{"mesh TLS alert to plaintext", kindMeshText, outcome{read: []byte{0x15, 0x03, 0x01}}, true, "TLS only"},
		{"mesh plaintext answer", kindMeshText, outcome{read: []byte("HTTP/1.1 200 OK")}, false, "answered plaintext"},
		{"tls handshake refused", kindMeshTLS, outcome{handshakeErr: errors.New("remote error: tls: certificate required")}, true, "certificate required"},
		{"tls closed after handshake", kindMeshTLS, outcome{readErr: errors.New("remote error: tls: bad certificate")}, true, "bad certificate"},
		{"tls served", kindMeshTLS, outcome{read: []byte("HTTP/1.1 200")}, false, "without a mesh certificate"},
		{"tls mesh down", kindMeshTLS, outcome{dialErr: reset}, false, "takes no connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := classify(tc.kind, tc.o)
			if ok != tc.ok || !strings.Contains(reason, tc.reason) {
				t.Errorf("classify = %v, %q; want %v with %q", ok, reason, tc.ok, tc.reason)
			}
		})
	}
}

// The probes against real sockets: a listening port fails, a closed one
// passes, a port that accepts and closes at once still fails.
func TestProbeRealSockets(t *testing.T) {
	p := prober{timeout: 2 * time.Second}
	l := serveConns(t, func(net.Conn) {})
	if ok, reason := p.probe(kindApp, l.Addr().String()); ok {
		t.Errorf("a port that accepts and closes passed: %s", reason)
	}
	closed := l.Addr().String()
	l.Close()
	if ok, reason := p.probe(kindApp, closed); !ok || reason != "connection refused" {
		t.Errorf("a closed port: %v, %q; want refused", ok, reason)
	}
	// A plaintext HTTP server on a "mesh port" fails the plaintext probe
	// (the TLS probe's handshake fails on it, which the plaintext probe
	// is there to catch).
	h := serveConns(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
	})
	if ok, reason := p.probe(kindMeshText, h.Addr().String()); ok {
		t.Errorf("mesh-plaintext against a plaintext server passed: %s", reason)
	}
}

// serveConns accepts connections on a loopback listener until it closes
// (at the end of the test at the latest) and hands each to handle on a
// goroutine of its own, closing the connection when handle returns.
func serveConns(t *testing.T, handle func(c net.Conn)) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l
}

func TestCheckTargets(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("172.26.64.0/20")}
	insts := []api.InstanceReport{
		{ID: "api-0", Address: "127.0.0.2", Ports: map[string]int{"app": 8080, "mesh": 15001, "admin": 15000},
			Outbound: []api.OutboundReport{{Upstream: "store", Address: "127.0.0.2", Port: 9002}}},
		{ID: "remote-0", Address: "192.0.2.11", Ports: map[string]int{"app": 8080, "mesh": 15001}},
		{ID: "node-0", Address: "192.0.2.10", Ports: map[string]int{"app": 8080}},
		// Host networking: the app listens on 127.0.0.1, where its sidecar
		// reaches it; that is what must refuse strangers.
		{ID: "host-0", Address: "192.0.2.10", Ports: map[string]int{"app": 8081}, App: "127.0.0.1:8081"},
		// Its own network namespace (a Nomad bridge allocation advertised
		// at its own address): the compiled 127.0.0.1 is the namespace's
		// loopback, so the app and the outbound listener are probed at the
		// allocation's address, where this node reaches the namespace.
		{ID: "alloc-0", Address: "172.26.64.5", Isolation: "netns", Ports: map[string]int{"app": 8080, "mesh": 15001},
			App: "127.0.0.1:8080", Outbound: []api.OutboundReport{{Upstream: "api", Address: "127.0.0.1", Port: 9001}}},
	}
	got, skipped, err := checkTargets(insts, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tg := range got {
		lines = append(lines, tg.instance+" "+tg.addr+" "+tg.kind+" "+tg.upstream)
	}
	want := []string{
		"api-0 127.0.0.2:8080 app ", "api-0 127.0.0.2:9002 outbound store",
		"api-0 127.0.0.2:15001 mesh-plaintext ", "api-0 127.0.0.2:15001 mesh-tls-no-cert ",
		"node-0 192.0.2.10:8080 app ",
		"host-0 127.0.0.1:8081 app ",
		"alloc-0 172.26.64.5:8080 app ", "alloc-0 172.26.64.5:9001 outbound api",
		"alloc-0 172.26.64.5:15001 mesh-plaintext ", "alloc-0 172.26.64.5:15001 mesh-tls-no-cert ",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if len(skipped) != 1 || skipped[0] != "remote-0" {
		t.Errorf("skipped %v, want [remote-0]", skipped)
	}
	if got, _, err := checkTargets(insts, local, []string{"node-0"}); err != nil || len(got) != 1 {
		t.Errorf("--instance node-0: %d targets, %v", len(got), err)
	}
	if _, _, err := checkTargets(insts, local, []string{"nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("--instance nope: %v; want an error naming it", err)
	}
}

func TestInterfacePrefixes(t *testing.T) {
	ipnet := func(cidr string) *net.IPNet {
		ip, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	// What the kernel gives for IPv4: a 16-byte address with a 4-byte mask,
	// or both 16 bytes.
	v4in16 := &net.IPNet{IP: net.ParseIP("172.26.64.1"), Mask: net.CIDRMask(96+20, 128)}
	for _, tc := range []struct {
		name        string
		addrs       []net.Addr
		wholeSubnet bool
		want        string
	}{
		{"loopback is local as a whole", []net.Addr{ipnet("127.0.0.1/8"), ipnet("::1/128")}, false, "127.0.0.0/8 ::1/128"},
		{"another interface owns its address only", []net.Addr{ipnet("192.0.2.2/24"), ipnet("fd00::2/64")}, false, "192.0.2.2/32 fd00::2/128"},
		{"a node-local bridge owns its subnet", []net.Addr{ipnet("172.26.64.1/20"), ipnet("fd00:1::1/64")}, true, "172.26.64.0/20 fd00:1::/64"},
		{"a 16-byte mask on an IPv4 address", []net.Addr{v4in16}, true, "172.26.64.0/20"},
		{"not a link-local subnet, even on a node-local bridge", []net.Addr{ipnet("fe80::6088:44ff:fe28:ba1f/64")}, true, "fe80::6088:44ff:fe28:ba1f/128"},
		{"a non-canonical mask is skipped on a bridge", []net.Addr{&net.IPNet{IP: net.ParseIP("10.0.0.1").To4(), Mask: net.IPMask{255, 0, 255, 0}}}, true, ""},
		{"not an IP network", []net.Addr{&net.UnixAddr{Name: "/x", Net: "unix"}}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range interfacePrefixes(tc.addrs, tc.wholeSubnet) {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("interfacePrefixes = %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

// nodeLocalBridge against sysfs trees written as Linux lays them out: a
// bridge has a bridge/ directory and its ports in brif/; a NIC has a
// device link; a VLAN or a bond sits on a lower_* link.
func TestNodeLocalBridge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tree  []string // directories under the class directory
		iface string
		want  bool
	}{
		{"a bridge of veths (Nomad's)", []string{"nomad/bridge", "nomad/brif/veth1", "nomad/brif/veth2", "veth1", "veth2"}, "nomad", true},
		{"a bridge with no port yet", []string{"cni0/bridge", "cni0/brif"}, "cni0", true},
		{"a bridge with a NIC in it", []string{"br0/bridge", "br0/brif/veth1", "br0/brif/eth0", "veth1", "eth0/device"}, "br0", false},
		{"a bridge with a VLAN of a NIC in it", []string{"br0/bridge", "br0/brif/eth0.7", "eth0.7/lower_eth0"}, "br0", false},
		{"a bridge with a bond in it", []string{"br0/bridge", "br0/brif/bond0", "bond0/lower_eth0", "bond0/lower_eth1"}, "br0", false},
		{"a bridge whose port cannot be read", []string{"br0/bridge", "br0/brif/gone"}, "br0", false},
		{"not a bridge", []string{"eth0/device"}, "eth0", false},
		{"a bridge file, not a directory", []string{"odd"}, "odd", false},
		{"no such interface", nil, "nope", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tc.tree {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.iface == "odd" {
				if err := os.WriteFile(filepath.Join(root, "odd", "bridge"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				os.MkdirAll(filepath.Join(root, "odd", "brif"), 0o755)
			}
			if got := nodeLocalBridge(root, tc.iface); got != tc.want {
				t.Errorf("nodeLocalBridge(%s) = %v, want %v", tc.iface, got, tc.want)
			}
		})
	}
}
