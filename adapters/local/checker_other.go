//go:build !linux

package local

import (
	"context"
	"fmt"
	"net"
)

// dialAsGroup: the guard, and so a group per sidecar, is Linux only.
func dialAsGroup(_ context.Context, gid int, addr string) (net.Conn, error) {
	return nil, fmt.Errorf("dialing %s as group %d: only on Linux", addr, gid)
}
