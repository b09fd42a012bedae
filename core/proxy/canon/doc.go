// Package canon puts every HTTP request a sidecar routes, authorizes or
// limits in one canonical form (Canonicalize), or refuses it with a
// BadRequest, and compiles the request matchers that read that form
// (Compile: path exact, prefix or anchored RE2 regex on the decoded
// canonical path without segment parameters; methods; headers and query
// parameters). A rule and the application must read a request the same way,
// or a spelling walks around the rule; core/proxy's doc.go ("Canonical
// requests") says what is decoded, merged, kept and refused.
//
// Entry points: Canonicalize, Compile, Matcher.Match, Matcher.Inputs.
package canon
