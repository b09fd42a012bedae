package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/core/api"
	"github.com/weftmesh/weft/core/compile"
	"github.com/weftmesh/weft/core/model"
	"github.com/weftmesh/weft/core/policy"
)

// `weft check` probes, from outside every instance's isolation, the ports
// that only the instance's own sidecar and app may use. Where: the app
// where its sidecar reaches it and the outbound listeners where the
// sidecar binds them (from the compiled configuration), except for an
// instance in its own network namespace, whose loopback is not this
// node's: there, both at the instance's address. What counts:
//
//   - app and outbound ports: OK when the connection is refused or reset
//     (a guard's reset, or nothing listening on the host's side of a
//     network namespace), when the address is unreachable, or when nothing
//     answers the SYN (a firewall drops it). A completed TCP handshake is a
//     failure, even if the server then closes the connection at once: the
//     port takes connections from anyone, and what sits behind it may
//     serve the next one.
//   - the mesh port, plaintext: OK when the sidecar answers an HTTP request
//     with nothing, with a TLS record, or by closing; a plaintext answer
//     fails.
//   - the mesh port, TLS without a mesh certificate: OK when the handshake
//     fails or the sidecar closes the connection before answering a
//     request; an answer fails. A mesh port that refuses connections fails
//     too: the instance is unreachable through the mesh.

// Probe kinds.
const (
	kindApp      = "app"
	kindOutbound = "outbound"
	kindMeshText = "mesh-plaintext"
	kindMeshTLS  = "mesh-tls-no-cert"
)

// CheckResult is one probed port.
type CheckResult struct {
	Instance string `json:"instance"`
	Address  string `json:"address"` // host:port
	Kind     string `json:"kind"`
	Upstream string `json:"upstream,omitempty"`
	OK       bool   `json:"ok"`
	Reason   string `json:"reason"`
}

// CheckReport is what `weft check --json` prints.
type CheckReport struct {
	OK      bool          `json:"ok"`
	Results []CheckResult `json:"results"`
	// Skipped are the instances whose address is not on this node.
	Skipped []string `json:"skipped,omitempty"`
	// Mesh judges the installation and every connected sidecar
	// (meshFindings).
	Mesh []CheckFinding `json:"mesh,omitempty"`
}

func newCheckCmd() *cobra.Command {
	var a adminFlags
	var asJSON bool
	var only []string
	var timeout time.Duration
	probes := true
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Probe the instances on this node: their app and outbound ports must refuse outsiders, their mesh port must refuse non-mesh clients",
		Long: `check asks the controller for every instance, keeps those whose address is
on this node (an address of a local interface, loopback included, or in the
subnet of a bridge that only this node's network namespaces are attached
to: a Nomad allocation's own address), and connects to their ports as an
ordinary process, outside every instance's isolation. An instance in its own
network namespace (isolation netns) is probed at its address, where the
node reaches the namespace; its app and outbound listeners are on the
namespace's loopback and must not answer there:

  app        the app port must refuse the connection
  outbound   every outbound (upstream) port must refuse the connection
  mesh-plaintext    the mesh port must not answer plaintext
  mesh-tls-no-cert  the mesh port must refuse a TLS client without a mesh certificate

A refused or reset connection, an unreachable address or a dropped SYN
counts as refused; a completed TCP handshake is a failure.

check then judges the installation and every connected sidecar, from the
controller's status:

  version      a sidecar's weft-proxy version differs from the controller's: FAIL
  certificate  expired: FAIL; less than 1h left: WARN
  config       the sidecar rejected (NACKed) its configuration: FAIL
  clock        the sidecar's clock is more than 5s from the controller's: FAIL (1s: WARN)
  adapter      an adapter is not running or cannot read its scheduler: FAIL
  sidecar      an instance has no sidecar connected (in node or application
               mode: its shared proxy has no stream of it): WARN
  proxy-mode   the scheduler serves an instance by a shared proxy that the
               policy's proxy_mode refuses: FAIL (the instance is not
               served); by its sidecar where policy asks for a shared
               proxy: WARN; by a shared proxy policy allows: OK

check exits 0 when nothing fails (warnings included) and 1 naming each
failure and what to do about it.`,
		Example: `  weft check --data-dir .weft-demo
  weft check --instance api-0 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep api.StatusReport
			if err := a.call("GET", "/v1/status", &rep); err != nil {
				return err
			}
			local, err := localPrefixes()
			if err != nil {
				return err
			}
			targets, skipped, err := checkTargets(rep.Instances, local, only)
			if err != nil {
				return err
			}
			var res []CheckResult
			if probes {
				res = runProbes(targets, prober{timeout: timeout})
			}
			out := CheckReport{OK: true, Results: res, Skipped: skipped, Mesh: meshFindings(rep, time.Now())}
			var failed []string
			for _, r := range res {
				if !r.OK {
					out.OK = false
					failed = append(failed, fmt.Sprintf("%s %s (%s): %s", r.Instance, r.Address, r.Kind, r.Reason))
				}
			}
			var meshFailed []string
			for _, f := range out.Mesh {
				if f.Level == levelFail {
					out.OK = false
					meshFailed = append(meshFailed, fmt.Sprintf("%s (%s): %s; %s", f.Subject, f.Check, f.Detail, f.Fix))
				}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(w, out); err != nil {
					return err
				}
			} else {
				if probes {
					writeCheckTable(w, out)
				}
				writeFindings(w, out.Mesh)
			}
			if len(meshFailed) > 0 {
				err := fmt.Errorf("%d checks of the installation failed:\n  %s", len(meshFailed), strings.Join(meshFailed, "\n  "))
				if len(failed) > 0 {
					err = fmt.Errorf("%w\nand %d of %d probes failed: %s", err, len(failed), len(res), strings.Join(failed, "; "))
				}
				return err
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d probes failed; these ports are open beside the mesh:\n  %s\nTurn the isolation on and check again (Nomad: remove network_mode = \"host\" from the weft block, for bridge networking; the local adapter: run the controller as root with nft installed, without the option isolation = none)",
					len(failed), len(res), strings.Join(failed, "\n  "))
			}
			return nil
		},
	}
	a.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	cmd.Flags().StringArrayVar(&only, "instance", nil, "check only this instance (repeatable)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long one probe waits for an answer")
	cmd.Flags().BoolVar(&probes, "probes", true, "probe the ports of the instances on this node (--probes=false: judge only the installation and the sidecars)")
	return cmd
}

func writeCheckTable(w io.Writer, rep CheckReport) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tPORT\tKIND\tRESULT\tREASON")
	failed := 0
	for _, r := range rep.Results {
		result := "OK"
		if !r.OK {
			result = "FAIL"
			failed++
		}
		kind := r.Kind
		if r.Upstream != "" {
			kind += " (" + r.Upstream + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Instance, r.Address, kind, result, r.Reason)
	}
	_ = tw.Flush()
	if len(rep.Skipped) > 0 {
		fmt.Fprintf(w, "\nnot on this node (run check there): %s\n", strings.Join(rep.Skipped, ", "))
	}
	switch {
	case len(rep.Results) == 0:
		fmt.Fprintln(w, "\nno instance to check on this node")
	case failed == 0:
		fmt.Fprintf(w, "\nall %d probes passed: every app and outbound port refuses outsiders\n", len(rep.Results))
	default:
		fmt.Fprintf(w, "\n%d of %d probes FAILED\n", failed, len(rep.Results))
	}
}

// sysClassNet is where Linux describes the network interfaces.
const sysClassNet = "/sys/class/net"

// localPrefixes returns the networks whose addresses are on this node:
// a loopback network as a whole (Linux answers all of 127.0.0.0/8), the
// own address of every other interface, and the whole subnet of a bridge
// that only network namespaces of this node are attached to (Nomad's
// "nomad" bridge, CNI's cni0, docker0): an instance in its own namespace
// (a Nomad allocation advertised with advertise = "alloc", a pod) has an
// address there, on this node.
func localPrefixes() ([]netip.Prefix, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing this node's interfaces: %w", err)
	}
	var out []netip.Prefix
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("listing the addresses of interface %s: %w", ifc.Name, err)
		}
		out = append(out, interfacePrefixes(addrs, nodeLocalBridge(sysClassNet, ifc.Name))...)
	}
	return out, nil
}

// interfacePrefixes are the local networks of one interface's addresses:
// the whole network of a loopback address, or of any address when
// wholeSubnet (a node-local bridge), else the address alone.
func interfacePrefixes(addrs []net.Addr, wholeSubnet bool) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		bits := ip.BitLen()
		if ip.IsLoopback() || (wholeSubnet && !ip.IsLinkLocalUnicast()) {
			ones, size := n.Mask.Size()
			if size == 0 {
				continue // a non-canonical mask: no network to speak of
			}
			bits = ones
			if ip.Is4() && size == 128 {
				bits -= 96
			}
		}
		out = append(out, netip.PrefixFrom(ip, bits).Masked())
	}
	return out
}

// nodeLocalBridge reports whether the interface name (under root, the
// sysfs class directory) is a bridge whose ports are all virtual, veth
// pairs into network namespaces or taps: no port is a device (a NIC) or
// sits on one (a VLAN, a bond: a lower_* link). Only such a bridge's
// subnet is this node's; a bridge with a NIC in it shares its subnet
// with other machines.
func nodeLocalBridge(root, name string) bool {
	if fi, err := os.Stat(filepath.Join(root, name, "bridge")); err != nil || !fi.IsDir() {
		return false
	}
	ports, err := os.ReadDir(filepath.Join(root, name, "brif"))
	if err != nil {
		return false
	}
	for _, p := range ports {
		if _, err := os.Stat(filepath.Join(root, p.Name(), "device")); err == nil {
			return false
		}
		entries, err := os.ReadDir(filepath.Join(root, p.Name()))
		if err != nil {
			return false // cannot tell: not local
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "lower_") {
				return false
			}
		}
	}
	return true
}

// target is one probe to run.
type target struct {
	instance, addr, kind, upstream string
}

// checkTargets picks the instances on this node (filtered by only) and
// lists their probes, in the order of the report.
func checkTargets(insts []api.InstanceReport, local []netip.Prefix, only []string) ([]target, []string, error) {
	var out []target
	var skipped []string
	found := map[string]bool{}
	for _, in := range insts {
		if len(only) > 0 && !slices.Contains(only, in.ID) {
			continue
		}
		found[in.ID] = true
		ip, err := netip.ParseAddr(in.Address)
		if err != nil || !onNode(ip.Unmap(), local) {
			skipped = append(skipped, in.ID)
			continue
		}
		hp := func(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
		// An instance in its own network namespace has its app and its
		// outbound listeners on the namespace's loopback: the 127.0.0.1 of
		// its compiled configuration is not this node's. From outside,
		// they are at the instance's address.
		netns := model.Isolation(in.Isolation) == model.IsolationNetNS
		// Else the app where its sidecar reaches it (an app on host
		// networking listens on 127.0.0.1, not on the instance's address),
		// else the instance's app port.
		switch p := in.Ports[model.PortApp]; {
		case netns && p > 0:
			out = append(out, target{in.ID, hp(in.Address, p), kindApp, ""})
		case !netns && in.App != "":
			out = append(out, target{in.ID, in.App, kindApp, ""})
		case p > 0:
			out = append(out, target{in.ID, hp(in.Address, p), kindApp, ""})
		}
		for _, o := range in.Outbound {
			addr := o.Address
			if netns {
				addr = in.Address
			}
			out = append(out, target{in.ID, hp(addr, o.Port), kindOutbound, o.Upstream})
		}
		if p := in.Ports[model.PortMesh]; p > 0 {
			out = append(out, target{in.ID, hp(in.Address, p), kindMeshText, ""}, target{in.ID, hp(in.Address, p), kindMeshTLS, ""})
		}
	}
	for _, id := range only {
		if !found[id] {
			return nil, nil, fmt.Errorf("checking instance %q: the controller knows no such instance (see weft status)", id)
		}
	}
	return out, skipped, nil
}

func onNode(ip netip.Addr, local []netip.Prefix) bool {
	for _, p := range local {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// runProbes runs every probe, a few at a time, and returns the results in
// the targets' order.
func runProbes(targets []target, p prober) []CheckResult {
	out := make([]CheckResult, len(targets))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ok, reason := p.probe(t.kind, t.addr)
			out[i] = CheckResult{Instance: t.instance, Address: t.addr, Kind: t.kind, Upstream: t.upstream, OK: ok, Reason: reason}
		}()
	}
	wg.Wait()
	return out
}

type prober struct{ timeout time.Duration }

// outcome is what one connection attempt saw.
type outcome struct {
	dialErr      error  // the TCP connect failed
	handshakeErr error  // the TLS handshake failed (mesh-tls-no-cert)
	read         []byte // the first bytes the server sent
	readErr      error  // why reading stopped
}

func (p prober) probe(kind, addr string) (bool, string) {
	return classify(kind, p.attempt(kind, addr))
}

// attempt connects to addr and, on the mesh port, sends a request.
func (p prober) attempt(kind, addr string) outcome {
	c, err := net.DialTimeout("tcp", addr, p.timeout)
	if err != nil {
		return outcome{dialErr: err}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(p.timeout))
	var o outcome
	conn := c
	switch kind {
	case kindMeshTLS:
		// No client certificate; the server's is not verified: the probe
		// asks only whether a stranger gets in.
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			return outcome{handshakeErr: err}
		}
		conn = tc
	case kindApp, kindOutbound:
		// Connected: that alone fails. Read what it says, for the reason,
		// briefly.
		_ = c.SetDeadline(time.Now().Add(min(p.timeout, 300*time.Millisecond)))
		buf := make([]byte, 64)
		n, err := conn.Read(buf)
		return outcome{read: buf[:n], readErr: err}
	}
	_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: weft-check\r\nX-Weft-Caller: spiffe://weft-check/forged\r\nConnection: close\r\n\r\n"))
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(conn, buf, 1)
	o.read, o.readErr = buf[:n], err
	return o
}

// classify turns what a probe saw into a result and its reason.
func classify(kind string, o outcome) (bool, string) {
	if o.dialErr != nil {
		refused, why := refusal(o.dialErr)
		if kind == kindMeshText || kind == kindMeshTLS {
			return false, "the mesh port takes no connection (" + why + "): is the sidecar running?"
		}
		if refused {
			return true, why
		}
		return false, "cannot tell: " + o.dialErr.Error()
	}
	switch kind {
	case kindApp, kindOutbound:
		what := "the app"
		if kind == kindOutbound {
			what = "the sidecar's outbound listener"
		}
		if len(o.read) > 0 {
			return false, fmt.Sprintf("open: accepted the connection and sent %q", o.read)
		}
		return false, "open: accepted the connection; any local process reaches " + what + " without the mesh"
	case kindMeshText:
		switch {
		case len(o.read) == 0:
			return true, "no answer to plaintext"
		case o.read[0] == 0x15 || o.read[0] == 0x16:
			return true, "answered plaintext with TLS only"
		default:
			return false, fmt.Sprintf("answered plaintext: %q", o.read)
		}
	case kindMeshTLS:
		if o.handshakeErr != nil {
			return true, "handshake refused: " + short(o.handshakeErr)
		}
		if len(o.read) == 0 {
			return true, "closed after the handshake: " + short(o.readErr)
		}
		return false, fmt.Sprintf("served a client without a mesh certificate: %q", o.read)
	}
	return false, "unknown probe kind " + kind
}

// refusal says whether a dial error means the port refuses outsiders, and
// names it.
func refusal(err error) (bool, string) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return true, "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return true, "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return true, "address unreachable"
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return true, "no answer to the SYN (dropped)"
	}
	return false, err.Error()
}

func short(err error) string {
	if err == nil {
		return "EOF"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && !strings.HasPrefix(s, "remote error") {
		s = s[i+2:]
	}
	return s
}

// The installation and its sidecars (issue 14): beside the port probes,
// `weft check` reads GET /v1/status and judges every connected sidecar and
// every adapter. Thresholds:
//
//   - version: a sidecar whose weft-proxy version differs from the
//     controller's fails (outdated, or ahead); one that does not say warns.
//   - certificate: expired fails; less than 1 h left warns (sidecars renew
//     at half-life, so a healthy one always has hours left).
//   - config: a sidecar that rejected (NACKed) its configuration fails; one
//     that has not applied the latest version yet warns.
//   - clock: a sidecar's clock more than 5 s from the controller's fails,
//     more than 1 s warns (certificates and tokens are checked against
//     clocks; the measure includes the network's one-way delay).
//   - adapters: one not running, or unable to read its scheduler, fails;
//     one that restarted, with its last error, warns.
//   - instances: one with no sidecar connected warns.
const (
	certWarnLeft = time.Hour
	skewWarn     = time.Second
	skewFail     = 5 * time.Second
)

// Finding levels.
const (
	levelOK   = "ok"
	levelWarn = "warn"
	levelFail = "fail"
)

// CheckFinding is one judgement of the installation or a sidecar.
type CheckFinding struct {
	Subject string `json:"subject"` // "sidecar api-0", "adapter local", "instance web-1"
	Check   string `json:"check"`   // version, certificate, config, clock, adapter, sidecar
	Level   string `json:"level"`   // ok, warn, fail
	Detail  string `json:"detail"`
	// Fix says what to do, for a warning or a failure.
	Fix string `json:"fix,omitempty"`
}

// meshFindings judges rep's sidecars and adapters at now.
func meshFindings(rep api.StatusReport, now time.Time) []CheckFinding {
	var out []CheckFinding
	add := func(subject, check, level, detail, fix string) {
		out = append(out, CheckFinding{Subject: subject, Check: check, Level: level, Detail: detail, Fix: fix})
	}
	ctlTime := rep.Time
	connected := map[string]bool{}
	for _, s := range rep.Sidecars {
		subj := "sidecar " + s.Instance
		connected[s.Instance] = true
		switch {
		case s.ProxyVersion == "":
			add(subj, "version", levelWarn, "the sidecar does not report its version (a weft-proxy older than this controller)",
				"upgrade weft-proxy to "+rep.ControllerVersion+" and restart the instance")
		case s.ProxyVersion != rep.ControllerVersion:
			add(subj, "version", levelFail, fmt.Sprintf("weft-proxy %s, the controller is %s", s.ProxyVersion, rep.ControllerVersion),
				"run the same weft-proxy as the controller: upgrade the sidecar (or the controller) to one version and restart it")
		default:
			add(subj, "version", levelOK, "weft-proxy "+s.ProxyVersion, "")
		}
		expires := s.CertExpires
		if expires == "" {
			expires = s.LeafExpires
		}
		if t, err := time.Parse(time.RFC3339, expires); err == nil {
			left := t.Sub(now)
			switch {
			case left <= 0:
				add(subj, "certificate", levelFail, "its certificate expired at "+expires,
					"the sidecar cannot renew: check that it reaches the controller and that its workload is still bound in policy (weft status), then restart it")
			case left < certWarnLeft:
				add(subj, "certificate", levelWarn, fmt.Sprintf("its certificate expires in %s (%s)", left.Round(time.Second), expires),
					"a sidecar renews at half-life: check its log for renewal errors and that it reaches the controller")
			default:
				add(subj, "certificate", levelOK, fmt.Sprintf("expires in %s", left.Round(time.Minute)), "")
			}
		} else {
			add(subj, "certificate", levelWarn, "its certificate's expiry is unknown (issued by another controller replica, and the sidecar does not say)", "upgrade weft-proxy")
		}
		switch {
		case s.RejectedVersion != 0:
			add(subj, "config", levelFail, fmt.Sprintf("rejected (NACKed) configuration version %d: %s; it keeps version %d", s.RejectedVersion, s.RejectError, s.AckedVersion),
				"fix what the sidecar refused (its error above: often a port already taken on its node, or a policy the sidecar cannot apply); it keeps its last good configuration meanwhile")
		case s.AckedVersion < s.Version:
			add(subj, "config", levelWarn, fmt.Sprintf("has applied version %d, the latest is %d", s.AckedVersion, s.Version),
				"wait a moment and check again; if it stays behind, read the sidecar's log")
		default:
			add(subj, "config", levelOK, fmt.Sprintf("applied version %d", s.AckedVersion), "")
		}
		if s.ProxyVersion != "" && !ctlTime.IsZero() {
			skew := time.Duration(s.ClockSkewMs) * time.Millisecond
			abs := skew.Abs()
			detail := fmt.Sprintf("its clock is %s %s the controller's", abs.Round(time.Millisecond), map[bool]string{true: "ahead of", false: "behind"}[skew >= 0])
			fix := "synchronise the clocks of the sidecar's node and the controller's (chrony or systemd-timesyncd): certificates are checked against them"
			switch {
			case abs > skewFail:
				add(subj, "clock", levelFail, detail, fix)
			case abs > skewWarn:
				add(subj, "clock", levelWarn, detail, fix)
			default:
				add(subj, "clock", levelOK, detail, "")
			}
		}
	}
	modeIssues := map[string]model.Dropped{}
	for _, d := range rep.Dropped {
		if d.Reason == compile.ReasonProxyModeRefused || d.Reason == compile.ReasonProxyModeMismatch {
			modeIssues[d.Instance] = d
		}
	}
	for _, in := range rep.Instances {
		subj := "instance " + in.ID
		shared := in.ProxyMode == string(policy.ProxyNode) || in.ProxyMode == string(policy.ProxyApplication)
		switch {
		case connected[in.ID]:
		case shared:
			add(subj, "sidecar", levelWarn, fmt.Sprintf("its %s proxy has no stream of this instance connected to this controller", in.ProxyMode),
				"check the shared proxy's log (it names each instance it serves and why one is refused); another controller replica may serve it")
		default:
			add(subj, "sidecar", levelWarn, "no sidecar of this instance is connected to this controller",
				"start its sidecar, or check that it reaches the controller (its log says why it does not); another controller replica may serve it")
		}
		// Proxy modes (docs/deployment-models.md): a shared proxy that
		// policy refuses leaves the instance unserved; a sidecar where
		// policy wants a shared proxy serves, not as policy says.
		d, mismatch := modeIssues[in.ID]
		switch {
		case mismatch && d.Reason == compile.ReasonProxyModeRefused:
			add(subj, "proxy-mode", levelFail, d.Detail, "make the scheduler and the policy's proxy_mode agree (weft policy plan shows a policy change before it applies)")
		case mismatch:
			add(subj, "proxy-mode", levelWarn, d.Detail, "make the scheduler and the policy's proxy_mode agree")
		case shared:
			add(subj, "proxy-mode", levelOK, fmt.Sprintf("served by its %s proxy, which policy allows", in.ProxyMode), "")
		}
	}
	for _, k := range rep.JWKS {
		subj := "jwt keys " + k.Source
		switch {
		case k.Error != "" && k.KeyBytes == 0:
			add(subj, "jwks", levelFail, "never read: "+k.Error+"; every token of the providers using it is refused",
				"make the key set readable by the controller (the URL reachable over https with the system's roots, or the file present and valid JWKS)")
		case k.Error != "":
			add(subj, "jwks", levelWarn, fmt.Sprintf("the last read failed (%s); the keys read %s stay in force", k.Error, k.ReadAt.UTC().Format(time.RFC3339)),
				"check the key set's URL or file; a key rotated at the issuer is not known until a read works")
		default:
			add(subj, "jwks", levelOK, fmt.Sprintf("%d bytes of keys", k.KeyBytes), "")
		}
	}
	out = append(out, raftFindings(rep.Raft)...)
	for _, a := range rep.Adapters {
		subj := "adapter " + a.Name
		switch {
		case !a.Running:
			add(subj, "adapter", levelFail, fmt.Sprintf("not running (%d restarts; last error: %s)", a.Restarts, orNone(a.LastError)),
				"read the controller's log for the adapter's failure and fix its configuration (--adapter, --adapter-option); the controller restarts it")
		case a.SourceFailing:
			add(subj, "adapter", levelFail, "cannot read its scheduler: "+a.LastError,
				"check the scheduler's address and credentials in the adapter's options; its last snapshot stays in force meanwhile")
		case a.Restarts > 0:
			add(subj, "adapter", levelWarn, fmt.Sprintf("running after %d restarts; last error: %s", a.Restarts, orNone(a.LastError)),
				"read the controller's log for why it restarted")
		default:
			add(subj, "adapter", levelOK, "running", "")
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func writeFindings(w io.Writer, fs []CheckFinding) {
	if len(fs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSUBJECT\tCHECK\tRESULT\tDETAIL")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Subject, f.Check, strings.ToUpper(f.Level), f.Detail)
	}
	_ = tw.Flush()
	for _, f := range fs {
		if f.Level != levelOK {
			fmt.Fprintf(w, "%s %s (%s): %s\n", strings.ToUpper(f.Level), f.Subject, f.Check, f.Fix)
		}
	}
}
