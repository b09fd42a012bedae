// Package backoff is the one exponential backoff in Weft: the delay
// before the next attempt doubles from a minimum to a maximum, with jitter,
// and goes back to the minimum on Reset. Entry point: New, then Next after
// each failure and Reset after a success. Spread is the other kind of
// jitter, a uniform draw from zero: the wait before a first retry that many
// clients make together (sidecars whose controller replica died).
//
// It imports nothing of Weft, so every layer can use it: the sidecar's
// controller client, the plugin host, and (through plugins/sdk) every
// adapter.
package backoff
