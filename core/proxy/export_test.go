package proxy

// ParseAccessLine is parseAccessLine, for the tests of package proxy_test.
var ParseAccessLine = parseAccessLine
