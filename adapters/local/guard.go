package local

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/weftmesh/weft/core/model"
)

// The guard: nftables rules, in a table of the adapter's own, that let only
// an instance's sidecar (and its app) open TCP connections to its app port
// and only its app open connections to its outbound (upstream) ports. The
// rules match the connecting socket's group (meta skgid) on the output
// hook, which every loopback connection passes: the adapter starts each
// app and each sidecar with a group of its own.

// Isolation modes, the values of the option OptionIsolation.
const (
	// OptionIsolation selects the isolation: "guard" (the default; needs
	// root and nft) or "none" (no rules: every port of every instance is
	// open to any local process, and the adapter says so).
	OptionIsolation = "isolation"
	// OptionEdge names services (comma-separated) whose app port is left
	// open on purpose, for a browser or curl on this machine: the way into
	// the mesh. Their outbound ports stay guarded, and their instances
	// report isolation none.
	OptionEdge = "edge"
	// OptionEgress is "allow" (the default) or "deny": with deny, the
	// guard also lets an app open connections only to its own instance
	// address, where its sidecar's outbound listeners are, so that it
	// reaches the outside only through declared external services (the
	// policy's external_service blocks, mesh { egress = "deny" }).
	OptionEgress = "egress"
	egressAllow  = "allow"
	egressDeny   = "deny"

	isolationGuard = "guard"
	isolationNone  = "none"
)

// gidBase is the first group ID the guard hands out. An instance at
// 127.A.B.C gets, with n = A<<16 | B<<8 | C,
//
//	app:     gidBase + 2n
//	sidecar: gidBase + 2n + 1
//
// so gids run from 2000000000 to 2033554431: far above the groups of
// /etc/group and of usual directory services, below 2^31 (some tools read
// gids as signed), and the same for an instance's address in every run, so
// that processes adopted from an earlier adapter keep theirs.
const gidBase = 2_000_000_000

// gids returns the group IDs of the app and the sidecar of the instance at
// addr, an IPv4 loopback address.
func gids(addr string) (app, proxy uint32, err error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() || !a.IsLoopback() {
		return 0, 0, fmt.Errorf("instance address %q is not an IPv4 loopback address", addr)
	}
	b := a.As4()
	n := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return gidBase + 2*n, gidBase + 2*n + 1, nil
}

// gidLast is the last group ID the guard can hand out (127.255.255.255).
const gidLast = gidBase + 2*(1<<24) - 1

// groupsInRange returns the groups of an /etc/group file whose gid the
// guard could hand out: a member of one could pass as an app or sidecar.
func groupsInRange(etcGroup string) []string {
	var out []string
	for _, line := range strings.Split(etcGroup, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		g, err := strconv.ParseUint(f[2], 10, 32)
		if err == nil && g >= gidBase && g <= gidLast {
			out = append(out, f[0]+" ("+f[2]+")")
		}
	}
	return out
}

// guardedInstance is what the rules of one instance are made of. Every
// instance has a loopback address of its own, so every port on it is the
// instance's: the app port, the sidecar's mesh and admin ports, and the
// sidecar's outbound listeners, whatever ports the policy gives them.
type guardedInstance struct {
	ID       string
	Address  string
	AppPort  int
	Edge     bool  // the app port is left open (an edge service)
	Egress   bool  // egress deny: the app connects to its own address only
	Open     []int // ports anyone may connect to: the sidecar's mesh and admin ports
	AppGID   uint32
	ProxyGID uint32
}

// tablePrefix starts the name of every table a local adapter creates; the
// adapter's pid follows, so that concurrent adapters never share a table
// and a new adapter can tell the tables of dead ones.
const tablePrefix = "weft_local_"

// renderRuleset returns the nft script that replaces table (in the inet
// family) with the rules for insts, in one transaction: nft -f applies a
// file atomically, so there is never a moment without rules. Declaring the
// table before deleting it makes the delete succeed on the first run.
//
// Per instance, two rules: its app port takes connections from its app and
// sidecar only; every other port of its address but the sidecar's mesh and
// admin ports (that is, the outbound listeners, whichever ports the policy
// gives them, from the moment they open) takes connections from its app
// only. Only the first packet of a connection (SYN without ACK) is
// matched, and only to an instance's own address: established
// connections, replies, and every other address are left alone.
func renderRuleset(table string, insts []guardedInstance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", table, table)
	fmt.Fprintf(&b, "table inet %s {\n", table)
	b.WriteString("\tchain output {\n")
	b.WriteString("\t\ttype filter hook output priority filter; policy accept;\n")
	for _, in := range insts {
		const syn = "tcp flags & (syn | ack) == syn"
		if !in.Edge {
			fmt.Fprintf(&b, "\t\t# %s: app port from gids %d (app) and %d (sidecar) only\n", in.ID, in.AppGID, in.ProxyGID)
			fmt.Fprintf(&b, "\t\tip daddr %s tcp dport %d %s meta skgid != { %d, %d } reject with tcp reset\n",
				in.Address, in.AppPort, syn, in.AppGID, in.ProxyGID)
		}
		ports := []string{strconv.Itoa(in.AppPort)}
		for _, p := range in.Open {
			ports = append(ports, strconv.Itoa(p))
		}
		fmt.Fprintf(&b, "\t\t# %s: every other port but the sidecar's mesh and admin ports (its outbound listeners) from gid %d (app) only\n", in.ID, in.AppGID)
		fmt.Fprintf(&b, "\t\tip daddr %s tcp dport != { %s } %s meta skgid != %d reject with tcp reset\n",
			in.Address, strings.Join(ports, ", "), syn, in.AppGID)
		if in.Egress {
			fmt.Fprintf(&b, "\t\t# %s: egress deny: its app (gid %d) opens connections to its own address only (its sidecar's outbound listeners)\n", in.ID, in.AppGID)
			fmt.Fprintf(&b, "\t\tmeta skgid %d ip daddr != %s %s reject with tcp reset\n", in.AppGID, in.Address, syn)
			fmt.Fprintf(&b, "\t\tmeta skgid %d ip daddr != %s meta l4proto udp reject\n", in.AppGID, in.Address)
			fmt.Fprintf(&b, "\t\tmeta skgid %d meta nfproto ipv6 %s reject with tcp reset\n", in.AppGID, syn)
			fmt.Fprintf(&b, "\t\tmeta skgid %d meta nfproto ipv6 meta l4proto udp reject\n", in.AppGID)
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// guardSupport says whether the guard can run here; if not, why not, in a
// sentence for the warning.
func guardSupport() (nft string, why string) {
	if runtime.GOOS != "linux" {
		return "", "the guard uses nftables, which only Linux has"
	}
	if os.Geteuid() != 0 {
		return "", "the adapter does not run as root, which the guard needs to install nftables rules and start processes with groups of their own"
	}
	p, err := exec.LookPath("nft")
	if err != nil {
		for _, c := range []string{"/usr/sbin/nft", "/sbin/nft"} {
			if _, err := os.Stat(c); err == nil {
				return c, ""
			}
		}
		return "", "nft is not installed (Debian and Ubuntu: apt-get install nftables)"
	}
	return p, ""
}

// guard owns one nftables table and keeps its rules in line with the
// instances.
type guard struct {
	nft   string
	table string

	mu      sync.Mutex
	specs   []instanceSpec
	edge    map[string]bool // services left open
	egress  bool            // egress deny (option egress)
	applied string          // the ruleset in force ("" before the first)
	ok      bool            // the last apply succeeded
	err     error           // the last apply's error
	stale   []string        // tables of dead adapters, deleted by the first apply
}

// newGuard returns a guard for a table of this process's own. Its first
// apply also deletes the tables of local adapters that no longer run, in
// the same transaction: the processes of a dead adapter that the new one
// adopts are never unguarded in between.
func newGuard(nft string) (*guard, error) {
	g := &guard{nft: nft, table: tablePrefix + strconv.Itoa(os.Getpid())}
	out, err := exec.Command(nft, "list", "tables", "inet").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w: %s", err, bytes.TrimSpace(out))
	}
	g.stale = staleTables(string(out), alive)
	return g, nil
}

// staleTables returns the tables in `nft list tables` output that a local
// adapter created and whose process is gone.
func staleTables(listing string, isAlive func(int) bool) []string {
	var out []string
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "table" || f[1] != "inet" {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(f[2], tablePrefix))
		if !strings.HasPrefix(f[2], tablePrefix) || err != nil || pid <= 0 {
			continue
		}
		if pid != os.Getpid() && !isAlive(pid) {
			out = append(out, f[2])
		}
	}
	return out
}

// setSpecs records the instances to guard and applies the rules; it is
// called before their processes start, so an app port is never open.
func (g *guard) setSpecs(specs []instanceSpec, edge map[string]bool, egressDeny bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.specs, g.edge, g.egress = slices.Clone(specs), edge, egressDeny
	return g.applyLocked()
}

// retry applies the rules again after a failed apply.
func (g *guard) retry() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.applyLocked()
}

func (g *guard) instancesLocked() []guardedInstance {
	var out []guardedInstance
	for _, s := range g.specs {
		app, _, err := gids(s.Address)
		if err != nil {
			continue // the plan only hands out IPv4 loopback addresses
		}
		// The proxy that serves the instance: its sidecar, or the shared
		// proxy (node or application proxy) that runs with the sidecar
		// group of ProxyAddr (nodeproxy.go).
		pa := s.ProxyAddr
		if pa == "" {
			pa = s.Address
		}
		_, proxy, err := gids(pa)
		if err != nil {
			continue
		}
		out = append(out, guardedInstance{
			ID: s.ID, Address: s.Address, AppPort: s.Port, Edge: g.edge[s.Service], Egress: g.egress,
			Open: []int{meshPort, adminPort}, AppGID: app, ProxyGID: proxy,
		})
	}
	return out
}

func (g *guard) applyLocked() error {
	rs := renderRuleset(g.table, g.instancesLocked())
	if rs == g.applied && g.ok {
		return nil
	}
	script := rs
	for _, t := range g.stale {
		// Declared first, so that a table already gone is no error.
		script = fmt.Sprintf("table inet %s\ndelete table inet %s\n", t, t) + script
	}
	cmd := exec.Command(g.nft, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		g.ok, g.err = false, fmt.Errorf("applying the nftables rules of table %s: %w: %s", g.table, err, bytes.TrimSpace(out))
		return g.err
	}
	g.applied, g.ok, g.err, g.stale = rs, true, nil, nil
	return nil
}

// isolation returns the isolation of the instance of service svc: guard
// while the rules are in force, none for an edge service or when the last
// apply failed.
func (g *guard) isolation(svc string) model.Isolation {
	if g == nil {
		return model.IsolationNone
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ok || g.edge[svc] {
		return model.IsolationNone
	}
	return model.IsolationGuard
}

// status returns the last apply's error.
func (g *guard) status() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// close deletes the table.
func (g *guard) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ok = false
	out, err := exec.Command(g.nft, "delete", "table", "inet", g.table).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("deleting the nftables table %s: %w: %s", g.table, err, bytes.TrimSpace(out))
	}
	return nil
}

// credential is how a process of an instance is started under the guard:
// the adapter's uid, the instance's app or sidecar gid, no supplementary
// groups (setgroups with an empty list).
func credential(addr, kind string) (*syscall.Credential, error) {
	app, proxy, err := gids(addr)
	if err != nil {
		return nil, err
	}
	gid := app
	if kind == "proxy" {
		gid = proxy
	}
	return &syscall.Credential{Uid: uint32(os.Getuid()), Gid: gid, Groups: []uint32{}}, nil
}

// procGID returns the effective gid of a running process, from
// /proc/<pid>/status.
func procGID(pid int) (uint32, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading the status of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Gid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		g, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			break
		}
		return uint32(g), nil
	}
	return 0, fmt.Errorf("process %d: no Gid line in /proc/%d/status", pid, pid)
}
