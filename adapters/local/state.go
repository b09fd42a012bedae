package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/weftmesh/weft/core/inputlimit"
)

// The state file (<DataDir>/local-state.json) lets a new adapter process
// take over from one that died: it keeps every instance's address, so a
// restart hands out the same ones, and the pids and command lines of its
// processes, so they are adopted instead of started twice.

const stateVersion = 1

type stateFile struct {
	Version   int          `json:"version"`
	Instances []stateEntry `json:"instances"`
}

type stateEntry struct {
	ID        string         `json:"id"`
	Service   string         `json:"service"`
	Namespace string         `json:"namespace"`
	Address   string         `json:"address"`
	Ports     map[string]int `json:"ports"`
	App       stateProc      `json:"app"`
	Proxy     stateProc      `json:"proxy"`
	// Check is the status of the instance's check (passing, failing, or
	// empty for none yet or no check), for adapters that only watch
	// (option watch); adoption ignores it.
	Check string `json:"check,omitempty"`
}

// stateProc records one process: its pid (0 when not running), its
// command line and the hash of everything it was started with.
type stateProc struct {
	PID  int      `json:"pid"`
	Argv []string `json:"argv"`
	Hash string   `json:"hash"`
}

// The limits of the state file, checked before it is decoded: an instance
// takes a few hundred bytes and the file nests four levels, so 16 MiB is
// tens of thousands of instances, more than one adapter runs.
const (
	maxStateBytes = 16 << 20
	maxStateDepth = 16
)

// readState reads the state file; a missing file is an empty state.
func readState(path string) (map[string]stateEntry, error) {
	b, err := inputlimit.ReadFile(path, maxStateBytes)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]stateEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file: %w (delete it if no instances of an earlier run are still running)", err)
	}
	if err := inputlimit.JSONDepth(b, maxStateDepth); err != nil {
		return nil, fmt.Errorf("decoding state file %s: %w (delete it if no instances of an earlier run are still running)", path, err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decoding state file %s: %w (delete it if no instances of an earlier run are still running)", path, err)
	}
	if f.Version != stateVersion {
		return nil, fmt.Errorf("decoding state file %s: version %d, want %d (delete it if no instances of an earlier run are still running)", path, f.Version, stateVersion)
	}
	m := make(map[string]stateEntry, len(f.Instances))
	for _, e := range f.Instances {
		m[e.ID] = e
	}
	return m, nil
}

// writeState replaces the state file atomically.
func writeState(path string, entries []stateEntry) error {
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID < entries[j].ID })
	b, err := json.MarshalIndent(stateFile{Version: stateVersion, Instances: entries}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	return nil
}

// prevAddresses returns the address each instance had in the state.
func prevAddresses(st map[string]stateEntry) map[string]string {
	m := make(map[string]string, len(st))
	for id, e := range st {
		m[id] = e.Address
	}
	return m
}

// assignAddresses gives every instance in ids (already in stable order) a
// loopback address of its own: the one it had before (prev) when that is
// still a usable, unshared loopback address, otherwise the lowest free one
// from first upwards. Addresses in prev of instances no longer in ids are
// not handed out: their processes may still be stopping.
func assignAddresses(ids []string, prev map[string]string, first netip.Addr) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	used := map[netip.Addr]bool{}
	for _, id := range ids {
		a, err := netip.ParseAddr(prev[id])
		if err != nil || !a.Is4() || !a.IsLoopback() || used[a] {
			continue
		}
		used[a] = true
		out[id] = a.String()
	}
	for _, addr := range prev {
		if a, err := netip.ParseAddr(addr); err == nil {
			used[a] = true
		}
	}
	next := first
	for _, id := range ids {
		if _, ok := out[id]; ok {
			continue
		}
		for used[next] {
			next = next.Next()
		}
		if !next.IsValid() || !next.IsLoopback() || next == netip.AddrFrom4([4]byte{127, 255, 255, 255}) {
			return nil, fmt.Errorf("no loopback address left for instance %s after %s", id, first)
		}
		used[next] = true
		out[id] = next.String()
	}
	return out, nil
}

// adoptable reports whether the process recorded in p can stand for a
// process we would start with spec: it is alive, its command line is the
// one recorded and the one we would run, and what it was started with
// (environment, directory) hashes the same.
func adoptable(p stateProc, spec procSpec) bool {
	return p.PID > 0 && p.Hash == spec.hash() && equalArgv(p.Argv, spec.Argv) && runs(p.PID, p.Argv)
}

// held reports whether the process recorded in p still runs what was
// recorded: it is ours, from an earlier run, and holds its ports.
func held(p stateProc) bool {
	return p.PID > 0 && runs(p.PID, p.Argv)
}

// runs reports whether pid is a live process with command line argv. A
// recycled pid has another command line; a zombie has none.
func runs(pid int, argv []string) bool {
	if !alive(pid) {
		return false
	}
	got, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	want := []byte(strings.Join(argv, "\x00") + "\x00")
	return bytes.Equal(got, want)
}

// alive reports whether pid exists and is not a zombie. Processes adopted
// from a dead adapter are not our children, so their exit is seen here.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// No procfs: fall back to signal 0, which cannot tell zombies.
		return errors.Is(err, os.ErrNotExist) && syscall.Kill(pid, 0) == nil && !procfs()
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain them.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}

func procfs() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

func equalArgv(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
