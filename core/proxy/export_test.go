package proxy

// ParseAccessLine is parseAccessLine, for the tests of package proxy_test.
var ParseAccessLine = parseAccessLine

// BytesServed is the number of requests the inbound's byte-level
// HTTP/1.1 engine decided on.
func (p *Proxy) BytesServed() uint64 { return p.bytesServed.Load() }
