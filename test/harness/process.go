package harness

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer collects a process's output for assertions and failure logs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago
// (FreePort: drawn below the ephemeral range).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Options say how a Process runs and stops.
type Options struct {
	// Env is added to the test's environment.
	Env []string
	// Signal asks the process to stop: SIGTERM when nil.
	Signal os.Signal
	// Grace is how long Stop waits after Signal before SIGKILL: 10s when 0.
	Grace time.Duration
	// MustStop makes Stop report an error (t.Errorf) when the process
	// outlives Grace.
	MustStop bool
	// Group runs the process in a process group of its own, killed with
	// the test binary (Pdeathsig SIGKILL) unless NoDeathSignal; signals go
	// to the whole group.
	Group bool
	// NoDeathSignal, with Group, leaves the process running when the
	// thread that started it ends: for a process that must stop its own
	// children first (a Nomad agent and its tasks), in a test binary whose
	// goroutines may end locked to their thread (network namespaces),
	// which would kill it midway.
	NoDeathSignal bool
	// LogTail logs only the output's last LogTail lines when the test
	// failed; all of it when 0.
	LogTail int
}

// Process is a started binary whose output is kept. It is stopped at the
// test's cleanup, and its output logged if the test failed.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *SyncBuffer

	t      testing.TB
	opts   Options
	exited chan struct{}
}

// Start starts cmd, its output going to the Process's Out, and stops it
// at the test's cleanup.
func Start(t testing.TB, name string, cmd *exec.Cmd, opts Options) *Process {
	t.Helper()
	p, err := Launch(name, cmd, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.t = t
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			out := p.Out.String()
			if opts.LogTail > 0 {
				out = Tail(out, opts.LogTail)
			}
			t.Logf("--- %s's output:\n%s", name, out)
		}
	})
	return p
}

// Launch starts cmd, its output going to the Process's Out, outside any
// one test (a process shared by a package's tests): whoever launched it
// stops it (Stop). Start is Launch for one test.
func Launch(name string, cmd *exec.Cmd, opts Options) (*Process, error) {
	p := &Process{Name: name, Cmd: cmd, Out: &SyncBuffer{}, opts: opts, exited: make(chan struct{})}
	if opts.Env != nil {
		cmd.Env = append(os.Environ(), opts.Env...)
	}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	if opts.Group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if !opts.NoDeathSignal {
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

func (p *Process) signal(sig os.Signal) {
	if p.opts.Group {
		_ = syscall.Kill(-p.Cmd.Process.Pid, sig.(syscall.Signal))
		return
	}
	_ = p.Cmd.Process.Signal(sig)
}

// Stop sends the stop signal and waits Grace for the process to exit,
// then kills it. With MustStop, outliving Grace is a test error; outliving
// SIGKILL by 10s always is.
func (p *Process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	sig, grace := p.opts.Signal, p.opts.Grace
	if sig == nil {
		sig = syscall.SIGTERM
	}
	if grace == 0 {
		grace = 10 * time.Second
	}
	p.signal(sig)
	select {
	case <-p.exited:
		return
	case <-time.After(grace):
	}
	p.signal(syscall.SIGKILL)
	if p.opts.MustStop && p.t != nil {
		p.t.Errorf("%s did not stop within %v of %v; its output:\n%s", p.Name, grace, sig, p.Out.String())
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		if p.t != nil {
			p.t.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.Cmd.Process.Pid)
		}
	}
}

// StopWithin sends the stop signal and fails the test if the process has
// not exited within the bound.
func (p *Process) StopWithin(t testing.TB, within time.Duration) {
	t.Helper()
	sig := p.opts.Signal
	if sig == nil {
		sig = syscall.SIGTERM
	}
	p.signal(sig)
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("%s did not stop within %v of %v", p.Name, within, sig)
	}
}

// Kill sends SIGKILL and fails the test if the process has not exited
// within 10s.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die after SIGKILL", p.Name)
	}
}

// FirstLine is the first line of s that contains with, "" when none does.
func FirstLine(s, with string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, with) {
			return l
		}
	}
	return ""
}
