// Package health is the sidecar's active check of its own application:
// an HTTP GET of a path expecting a status, a call of the gRPC Health
// Checking Protocol (grpc.health.v1.Health/Check, SERVING passes), or a
// TCP connect, every interval, each bounded by a timeout, at the app
// address of the inbound (meshapi.HealthCheck, compiled from a service's
// health_check block).
//
// Entry point: New, then Checker.Start; Checker.State says what is known,
// and the onChange callback hears of every change (and of the first
// result). The app starts healthy; unhealthy_threshold failed probes in a
// row take it down, healthy_threshold passing ones bring it back.
// Checker.Fail takes it down at once: the inbound calls it when the app
// refuses a connection, and the next probe then runs without waiting for
// the interval.
//
// The Proxy (core/proxy) owns one checker per configuration that asks for
// one: while the checker says the app is down, the inbound answers new
// requests with the retryable signal (503 with X-Weft-Unavailable: app,
// gRPC UNAVAILABLE) without calling the app, and every change is handed
// to Options.Health, which carries it to the controller.
package health
