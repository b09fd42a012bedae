//go:build !linux

package proxy

const reusePortSupported = false

func setReusePort(uintptr) error { return ErrReusePortUnsupported }
