// Package inputlimit bounds what the mesh reads from files before it
// parses them (DESIGN.md invariant 7: every file has a size and a depth
// limit checked before parsing).
//
// Entry points: ReadFile, which reads a file through an io.LimitReader of
// its limit plus one byte, so that a file over the limit is refused without
// being read whole, and JSONDepth, a byte scan that refuses a JSON document
// nested deeper than a limit before encoding/json sees it. HCL files have
// their own scan in hcl/hcllimit, which knows HCL's strings, heredocs and
// templates.
//
// The errors, *TooLargeError and *TooDeepError, carry the limit and (for
// depth) the line, so that callers can say where and what to do.
//
// The package uses the standard library only: core/ca and the sidecar link
// it.
package inputlimit
