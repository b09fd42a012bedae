package local

import (
	"bufio"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAssignAddresses(t *testing.T) {
	first := netip.MustParseAddr("127.0.0.2")
	tests := []struct {
		name    string
		ids     []string
		prev    map[string]string
		first   netip.Addr
		want    map[string]string
		wantErr string
	}{
		{
			name:  "fresh, in the given order",
			ids:   []string{"api-0", "api-1", "web-0"},
			first: first,
			want:  map[string]string{"api-0": "127.0.0.2", "api-1": "127.0.0.3", "web-0": "127.0.0.4"},
		},
		{
			name:  "kept addresses stay, new ones fill the gaps",
			ids:   []string{"api-0", "api-1", "db-0", "web-0"},
			prev:  map[string]string{"api-1": "127.0.0.2", "web-0": "127.0.0.4"},
			first: first,
			want:  map[string]string{"api-0": "127.0.0.3", "api-1": "127.0.0.2", "db-0": "127.0.0.5", "web-0": "127.0.0.4"},
		},
		{
			name:  "the address of an instance that is gone is not reused at once",
			ids:   []string{"api-0", "db-0"},
			prev:  map[string]string{"api-0": "127.0.0.2", "api-1": "127.0.0.3"},
			first: first,
			want:  map[string]string{"api-0": "127.0.0.2", "db-0": "127.0.0.4"},
		},
		{
			name:  "unusable previous addresses are replaced",
			ids:   []string{"a-0", "b-0", "c-0"},
			prev:  map[string]string{"a-0": "10.0.0.1", "b-0": "garbage", "c-0": "::1"},
			first: first,
			want:  map[string]string{"a-0": "127.0.0.2", "b-0": "127.0.0.3", "c-0": "127.0.0.4"},
		},
		{
			name:  "a previous address shared by two instances goes to the first",
			ids:   []string{"a-0", "b-0"},
			prev:  map[string]string{"a-0": "127.0.0.9", "b-0": "127.0.0.9"},
			first: first,
			want:  map[string]string{"a-0": "127.0.0.9", "b-0": "127.0.0.2"},
		},
		{
			name:  "another first address, across an octet",
			ids:   []string{"a-0", "a-1"},
			first: netip.MustParseAddr("127.1.0.255"),
			want:  map[string]string{"a-0": "127.1.0.255", "a-1": "127.1.1.0"},
		},
		{
			name:    "out of loopback addresses",
			ids:     []string{"a-0", "a-1"},
			first:   netip.MustParseAddr("127.255.255.254"),
			wantErr: "no loopback address left for instance a-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := assignAddresses(tt.ids, tt.prev, tt.first)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "local-state.json")
	got, err := readState(path)
	if err != nil || len(got) != 0 {
		t.Fatalf("missing state file: %v, %v; want empty state", got, err)
	}
	entries := []stateEntry{
		{ID: "b-0", Service: "b", Namespace: "default", Address: "127.0.0.3", Ports: map[string]int{"app": 1, "mesh": 15001}},
		{ID: "a-0", Service: "a", Namespace: "default", Address: "127.0.0.2", Ports: map[string]int{"app": 2},
			App: stateProc{PID: 10, Argv: []string{"/bin/a"}, Hash: "h"}},
	}
	if err := writeState(path, entries); err != nil {
		t.Fatal(err)
	}
	got, err = readState(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]stateEntry{"a-0": entries[0], "b-0": entries[1]} // writeState sorts in place
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestReadStateBad(t *testing.T) {
	tests := map[string]struct{ content, want string }{
		"not JSON":        {"{", "decoding"},
		"wrong version":   {`{"version": 99, "instances": []}`, "version 99"},
		"too large":       {`{"version": 1, "instances": []}` + strings.Repeat(" ", maxStateBytes), "larger than the limit of 16 MiB"},
		"nested too deep": {`{"version": 1, "instances": [` + strings.Repeat("[", 100000), "nested more than 16 levels"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "local-state.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readState(path)
			if err == nil || !strings.Contains(err.Error(), "delete it if") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one that says %q and what to do", err, tt.want)
			}
		})
	}
}

func TestAdoptable(t *testing.T) {
	// A real process to adopt: this test binary, sleeping as a fake app.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, helperApp)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Start returns once the child has exec'd, but the kernel sets up its
	// command line a moment later: wait until the app says it listens.
	listening := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(out).ReadString('\n')
		listening <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err := <-listening:
		if err != nil {
			t.Fatalf("the fake app did not start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fake app did not say it listens within 10s")
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })

	spec := procSpec{Argv: []string{self, helperApp}, Env: []string{"A=1"}, Dir: "/"}
	other := spec
	other.Env = []string{"A=2"}
	tests := []struct {
		name string
		p    stateProc
		spec procSpec
		want bool
	}{
		{"same command line and hash", stateProc{PID: cmd.Process.Pid, Argv: spec.Argv, Hash: spec.hash()}, spec, true},
		{"environment changed", stateProc{PID: cmd.Process.Pid, Argv: spec.Argv, Hash: spec.hash()}, other, false},
		{"pid runs something else", stateProc{PID: os.Getpid(), Argv: spec.Argv, Hash: spec.hash()}, spec, false},
		{"no pid", stateProc{Argv: spec.Argv, Hash: spec.hash()}, spec, false},
		{"command line changed", stateProc{PID: cmd.Process.Pid, Argv: []string{self}, Hash: spec.hash()}, spec, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := adoptable(tt.p, tt.spec); got != tt.want {
				t.Errorf("adoptable = %v, want %v", got, tt.want)
			}
		})
	}

	// Once it has exited (and until it is reaped, a zombie) it is gone.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if alive(cmd.Process.Pid) {
		t.Error("alive reports a process that has exited")
	}
}

// A process that has exited but is not reaped yet (a zombie, as adopted
// processes become when their new parent is slow) is not alive.
func TestAliveZombie(t *testing.T) {
	cmd := exec.Command(testBinary(t), helperApp)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !alive(pid) {
		t.Fatal("a running process is not alive")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Wait for the exit without reaping it: it stays a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Error("a zombie is alive")
	}
	if runs(pid, cmd.Args) {
		t.Error("a zombie runs its command line")
	}
	_ = cmd.Wait()
	if alive(pid) {
		t.Error("a reaped process is alive")
	}
}
