package sdk_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, linux/prctl.h

// TestHostDeathExitsWithoutClose: when the host is SIGKILLed, the plugin
// exits on its own, with status 0 (its parent watch, not a signal), and
// does not call Close.
//
// The test process makes itself a child subreaper so that the orphaned
// plugin is re-parented to it and can be waited for.
func TestHostDeathExitsWithoutClose(t *testing.T) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("cannot become a child subreaper to wait for the orphaned plugin: %v", errno)
	}
	marker := t.TempDir() + "/closed"
	host := exec.Command(os.Args[0])
	host.Env = append(os.Environ(), modeEnv+"=host", markerEnv+"="+marker)
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatalf("starting host helper: %v", err)
	}
	pid := readPID(t, bufio.NewScanner(out))

	if err := host.Process.Kill(); err != nil {
		t.Fatalf("killing host: %v", err)
	}
	_ = host.Wait()

	exited := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			exited <- ws
			return
		}
	}()
	select {
	case ws := <-exited:
		if !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("plugin ended with %v, want exit status 0 from its parent watch", ws)
		}
	case <-time.After(wait):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("plugin %d still running %v after its host was killed", pid, wait)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close was called although the host died (marker: %v)", err)
	}
}
