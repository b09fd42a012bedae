package main

import (
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/weftmesh/weft/core/inputlimit"
	"github.com/weftmesh/weft/core/state"
)

// readStateKey reads --state-key-file. The file must be readable by its
// owner only (0600, 0400), or also by a group that is this process's own
// (0640, 0440): that is how Kubernetes mounts a Secret for a non-root
// container, defaultMode 0400 with the pod's fsGroup added as a reader
// (examples/kubernetes/controller.yaml). A file others can read, or a
// group other than ours (or root's), is refused with what to do.
func readStateKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the state key: %w (make one with: head -c 32 /dev/urandom | base64 > %s; chmod 600 %s)", err, path, path)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO would block the controller's start for ever, a device
		// (/dev/zero) would make a key of nothing.
		return nil, fmt.Errorf("reading the state key: %s is not a regular file (%v): write the key to a file, chmod 600 it and name that file", path, fi.Mode().Type())
	}
	perm := fi.Mode().Perm()
	if perm&0o007 != 0 {
		return nil, fmt.Errorf("reading the state key: %s is readable by others (mode %v): chmod 600 %s", path, perm, path)
	}
	if perm&0o070 != 0 && !groupIsOurs(fi) {
		return nil, fmt.Errorf("reading the state key: %s is readable by its group (mode %v), which is not this process's own: chmod 600 %s, or (on Kubernetes) mount the Secret with defaultMode 0400 and the pod's fsGroup", path, perm, path)
	}
	b, err := inputlimit.ReadFile(path, 1024)
	if err != nil {
		return nil, fmt.Errorf("reading the state key: %w", err)
	}
	return state.ParseKey(b)
}

// groupIsOurs says whether fi's group is one this process runs as, and not
// root's.
func groupIsOurs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Gid == 0 {
		return false
	}
	gid := int(st.Gid)
	if gid == os.Getgid() {
		return true
	}
	groups, err := os.Getgroups()
	return err == nil && slices.Contains(groups, gid)
}
