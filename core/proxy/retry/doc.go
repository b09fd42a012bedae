// Package retry is a route's retry policy in the sidecar: which failures
// and statuses are retried (5xx, gateway-error, reset, connect-failure,
// gRPC codes), how many tries a request gets and how long each may wait for
// response headers, and the budget that bounds retries to a share of recent
// requests (percent of the last 10 seconds' requests plus a minimum a
// second). A request body is kept as it streams (BodyRecorder, up to
// MaxBody) so that a retry or a mirror can send it again once it went out
// whole; PeekGRPCStatus reads a response's gRPC status without losing its
// first message.
//
// Entry points: New, Policy.RetriableStatus, Policy.RetriableError,
// Policy.AllowRetry, NewBodyRecorder, PeekGRPCStatus.
package retry
