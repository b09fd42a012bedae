// Package backoff is the one exponential backoff in Weft: the delay
// before the next attempt doubles from a minimum to a maximum, with jitter,
// and goes back to the minimum on Reset. Entry point: New, then Next after
// each failure and Reset after a success.
//
// It imports nothing of Weft, so every layer can use it: the sidecar's
// controller client, the plugin host, and (through plugins/sdk) every
// adapter.
package backoff
