// Package hcllimit bounds HCL files before they are parsed and their
// expressions before they are evaluated (DESIGN.md invariant 7). The
// policy loader (hcl/), the local adapter's workloads file and the Nomad
// jobspec renderer use it.
//
// Entry points: ReadFile reads a file within a size limit (through an
// io.LimitReader of the limit plus one byte, so a huge file is never read
// whole) and checks its nesting with Depth; Check does the same for a
// source in memory; Literal refuses the for expressions and template for
// directives that would make a small file evaluate to a huge value.
//
// # Why a pre-scan
//
// HCL's parser and evaluator recurse once or more per level of nesting,
// and Go cannot recover from a stack overflow: a 240 KB file of "[" ends
// the process. Depth is a single pass over the bytes that follows what
// HCL's lexer takes for code, quoted strings, heredocs, template sequences
// and comments, and counts, per level of code, what makes the parser
// recurse: { [ ( and quoted strings, heredocs, ${ and %{ sequences and the
// if and for directives they open, and chains of operators (!, -, ?:,
// binary operators, one index or splat after another), which count until a
// comma, a single = or a newline that ends an attribute. Inside strings
// and comments brackets do not count; where the scan is unsure (a %{ it
// does not recognise, a closing bracket that does not match) it counts
// more rather than less. A heredoc marker with non-ASCII letters is left
// to HCL's own lexer (tokens.go), which counts the same way on tokens; the
// tests hold the byte scan to never count less than the token count, and
// a fuzz test checks it on arbitrary input.
//
// The limits themselves belong to the callers, who know their files; each
// says why its numbers are what they are.
package hcllimit
