package harness

import "net"

// Serve accepts connections on ln until ln is closed, and handles each in
// a goroutine of its own, closing it after handle returns. It returns
// when ln is closed; run it in a goroutine.
func Serve(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}
