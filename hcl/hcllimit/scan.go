package hcllimit

import (
	"bytes"
	"errors"
	"unicode/utf8"

	"github.com/weftmesh/weft/core/inputlimit"
)

// Depth scans the HCL native syntax src and returns a *inputlimit.TooDeepError
// at the first place where its nesting passes limit, or nil.
//
// Nesting is what makes the HCL parser and evaluator recurse: brackets,
// braces and parentheses, quoted strings and heredocs, ${ } and %{ }
// sequences, the if and for directives of templates, and chains of
// operators within one expression (unary ! and -, ?:, and binary
// operators, each counted as a level until a comma, a single = or, where
// newlines end an expression, a newline). The scan follows HCL's lexer in
// what is code and what is string or comment, so brackets inside strings
// and comments do not count; where it cannot tell cheaply it counts more,
// never less, than the parser nests. It allocates nothing but its stack.
func Depth(src []byte, limit int) error {
	s := scanner{src: src, limit: limit, line: 1}
	s.stack = append(s.stack, entry{kind: kRoot})
	err := s.run()
	if s.exotic {
		// A heredoc marker with non-ASCII letters, or broken UTF-8 in code:
		// HCL's lexer decides by its own tables what they are; let it count.
		return tokenDepth(src, limit)
	}
	return err
}

// errExotic stops the byte scan where only HCL's lexer can tell what
// follows.
var errExotic = errors.New("non-ASCII bytes where only HCL's lexer can tell what they are")

const (
	kRoot    = iota // the file's body
	kBrace          // { (a block body or an object)
	kBrack          // [
	kParen          // (
	kInterp         // ${ or %{: code inside a template, up to its }
	kString         // "..."
	kHeredoc        // <<EOT ... EOT
)

type entry struct {
	kind int
	ops  int // operators counted at this level since its last reset
	// Heredocs only.
	marker      []byte
	lineStart   int
	lineSpecial bool // the current line has a $ or %, so it cannot end the heredoc
}

type scanner struct {
	src       []byte
	limit     int
	stack     []entry
	depth     int // len(stack)-1 plus every entry's ops
	line      int
	lineStart int
	exotic    bool
}

func (s *scanner) top() *entry { return &s.stack[len(s.stack)-1] }

func (s *scanner) tooDeep(at int) error {
	return &inputlimit.TooDeepError{Limit: s.limit, Line: s.line, Column: at - s.lineStart + 1, Offset: at}
}

func (s *scanner) push(e entry, at int) error {
	s.stack = append(s.stack, e)
	s.depth++
	if s.depth > s.limit {
		return s.tooDeep(at)
	}
	return nil
}

func (s *scanner) pop() {
	e := s.top()
	s.depth -= 1 + e.ops
	s.stack = s.stack[:len(s.stack)-1]
}

func (s *scanner) op(at int) error {
	s.top().ops++
	s.depth++
	if s.depth > s.limit {
		return s.tooDeep(at)
	}
	return nil
}

func (s *scanner) reset() {
	e := s.top()
	s.depth -= e.ops
	e.ops = 0
}

func (s *scanner) newline(i int) {
	s.line++
	s.lineStart = i + 1
}

func (s *scanner) run() error {
	src := s.src
	for i := 0; i < len(src); {
		var err error
		switch s.top().kind {
		case kString:
			i, err = s.inString(i)
		case kHeredoc:
			i, err = s.inHeredoc(i)
		default:
			i, err = s.inCode(i)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// inString handles the byte at i inside a quoted string and returns where
// to go on. As in HCL, a newline does not end the string.
func (s *scanner) inString(i int) (int, error) {
	src := s.src
	switch c := src[i]; c {
	case '"':
		s.pop()
		return i + 1, nil
	case '\\':
		if i+1 < len(src) && src[i+1] != '\n' && src[i+1] != '\r' {
			return i + 2, nil
		}
		return i + 1, nil
	case '\n':
		s.newline(i)
		return i + 1, nil
	case '$', '%':
		return s.templateSequence(i)
	}
	return i + 1, nil
}

// templateSequence handles a $ or % inside a string or heredoc: ${ and %{
// open a sequence of code, $${ and %%{ are literal.
func (s *scanner) templateSequence(i int) (int, error) {
	src := s.src
	c := src[i]
	if i+1 < len(src) && src[i+1] == '{' {
		if c == '%' {
			s.directive(i + 2)
		}
		j := i + 2
		if j < len(src) && src[j] == '~' {
			j++
		}
		return j, s.push(entry{kind: kInterp}, i)
	}
	if i+2 < len(src) && src[i+1] == c && src[i+2] == '{' {
		return i + 3, nil
	}
	return i + 1, nil
}

// directive counts the if and for directives of a template as a level of
// the string or heredoc that holds them, until their endif or endfor. Any
// %{ that is not plainly an end or an else counts, so a directive spelled
// in a way this does not recognise counts too.
func (s *scanner) directive(j int) {
	src := s.src
	if j < len(src) && src[j] == '~' {
		j++
	}
	for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\r' || src[j] == '\n') {
		j++
	}
	k := j
	for k < len(src) && isWordByte(src[k]) {
		k++
	}
	e := s.top()
	switch string(src[j:k]) {
	case "endif", "endfor":
		if e.ops > 0 {
			e.ops--
			s.depth--
		}
	case "else":
	default:
		// No check against the limit here: the ${ that follows is pushed
		// and checked at once.
		e.ops++
		s.depth++
	}
}

// inHeredoc handles the byte at i inside a heredoc. A heredoc ends at a
// line that, trimmed, is its marker, when the line holds nothing else (no
// $ or %, as HCL's lexer has it).
func (s *scanner) inHeredoc(i int) (int, error) {
	src := s.src
	e := s.top()
	switch src[i] {
	case '\n':
		if !e.lineSpecial && bytes.Equal(bytes.TrimSpace(src[e.lineStart:i]), e.marker) {
			// The newline after the marker belongs to the code again.
			s.pop()
			return i, nil
		}
		s.newline(i)
		e.lineStart, e.lineSpecial = i+1, false
		return i + 1, nil
	case '$', '%':
		e.lineSpecial = true
		return s.templateSequence(i)
	}
	return i + 1, nil
}

// inCode handles the bytes from i in code (a body, an expression, or the
// code of a template sequence).
func (s *scanner) inCode(i int) (int, error) {
	src := s.src
	next := func(k int) byte {
		if i+k < len(src) {
			return src[i+k]
		}
		return 0
	}
	switch c := src[i]; {
	case c == ' ' || c == '\t' || c == '\r':
		return i + 1, nil
	case c == '\n':
		if k := s.top().kind; k == kRoot || k == kBrace {
			s.reset() // a newline ends an attribute or an object item
		}
		s.newline(i)
		return i + 1, nil
	case c == '#' || c == '/' && next(1) == '/':
		if n := bytes.IndexByte(src[i:], '\n'); n >= 0 {
			return i + n, nil // the newline is handled as one
		}
		return len(src), nil
	case c == '/' && next(1) == '*' && bytes.Contains(src[i+2:], []byte("*/")):
		// Without its */ it is no comment to HCL's lexer but a / and a *.
		end := i + 2 + bytes.Index(src[i+2:], []byte("*/")) + 2
		for j := i; j < end; j++ {
			if src[j] == '\n' {
				s.newline(j)
			}
		}
		return end, nil
	case c == '"':
		return i + 1, s.push(entry{kind: kString}, i)
	case c == '<' && next(1) == '<':
		j, marker, ok := s.heredocIntro(i)
		if s.exotic {
			return i, errExotic
		}
		if ok {
			s.newline(j - 1)
			return j, s.push(entry{kind: kHeredoc, marker: marker, lineStart: j}, i)
		}
		return i + 2, s.twoOps(i)
	case c == '{':
		return i + 1, s.push(entry{kind: kBrace}, i)
	case c == '[':
		return i + 1, s.push(entry{kind: kBrack}, i)
	case c == '(':
		return i + 1, s.push(entry{kind: kParen}, i)
	case c == '}':
		s.closeBrace()
		return i + 1, nil
	case c == ']':
		if s.top().kind == kBrack {
			s.pop()
			// An index or splat may follow another: each nests the
			// expression once more, so it counts until a reset.
			return i + 1, s.op(i)
		}
		return i + 1, nil
	case c == ')':
		if s.top().kind == kParen {
			s.pop()
		}
		return i + 1, nil
	case c == ',':
		s.reset()
		return i + 1, nil
	case c == '=':
		switch next(1) {
		case '=':
			return i + 2, s.op(i)
		case '>':
			return i + 2, nil
		}
		s.reset() // an attribute's or an object item's value starts
		return i + 1, nil
	case c == '!' || c == '<' || c == '>':
		if next(1) == '=' {
			return i + 2, s.op(i)
		}
		return i + 1, s.op(i)
	case c == '?' || c == '+' || c == '*' || c == '/' || c == '%' || c == '&' || c == '|' || c == '-':
		return i + 1, s.op(i)
	case c >= '0' && c <= '9':
		return s.number(i), nil
	case c >= utf8.RuneSelf:
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			// HCL's lexer may take a broken UTF-8 sequence and the bytes
			// after it for one character; if those could close, reset or
			// open a string or comment, only the lexer can tell.
			for k := i + 1; k < len(src) && k <= i+3; k++ {
				if bytes.IndexByte([]byte("]}),=\n\"#/<"), src[k]) >= 0 {
					s.exotic = true
					return i, errExotic
				}
			}
		}
		return i + size, nil
	case isASCIIWordByte(c):
		// An identifier, whose dashes are no minus signs. It stops at a
		// non-ASCII byte, which may not be a letter to HCL: a dash after
		// one counts.
		j := i + 1
		for j < len(src) && (isASCIIWordByte(src[j]) || src[j] == '-') {
			j++
		}
		return j, nil
	}
	return i + 1, nil
}

func (s *scanner) twoOps(i int) error {
	if err := s.op(i); err != nil {
		return err
	}
	return s.op(i + 1)
}

// number skips a number literal, with its exponent's sign.
func (s *scanner) number(i int) int {
	src := s.src
	j := i
	for j < len(src) {
		c := src[j]
		switch {
		case c >= '0' && c <= '9' || c == '.':
			j++
		case (c == 'e' || c == 'E') && j+1 < len(src):
			j++
			if src[j] == '+' || src[j] == '-' {
				j++
			}
		default:
			return j
		}
	}
	return j
}

// closeBrace closes the innermost { of the current sequence of code, and
// whatever brackets are still open inside it; with none, it ends the ${ or
// %{ sequence that holds the code, as HCL's lexer does.
func (s *scanner) closeBrace() {
	for j := len(s.stack) - 1; j >= 0; j-- {
		switch s.stack[j].kind {
		case kBrace, kInterp:
			for len(s.stack) > j {
				s.pop()
			}
			return
		case kRoot, kString, kHeredoc:
			return
		}
	}
}

// heredocIntro reports whether a heredoc starts at i (<<EOT or <<-EOT and
// a newline), and returns where its first line starts and its marker.
func (s *scanner) heredocIntro(i int) (int, []byte, bool) {
	src := s.src
	j := i + 2
	if j < len(src) && src[j] == '-' {
		j++
	}
	start := j
	for j < len(src) && src[j] != '\n' && src[j] != '\r' {
		c := src[j]
		if c >= utf8.RuneSelf {
			s.exotic = true
			return 0, nil, false
		}
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			j > start && (c == '-' || c >= '0' && c <= '9')
		if !ok {
			return 0, nil, false
		}
		j++
	}
	marker := src[start:j]
	if len(marker) == 0 {
		return 0, nil, false
	}
	if j < len(src) && src[j] == '\r' {
		j++
	}
	if j >= len(src) || src[j] != '\n' {
		return 0, nil, false
	}
	return j + 1, marker, true
}

func isASCIIWordByte(c byte) bool { return c < utf8.RuneSelf && isWordByte(c) }

// isWordByte reports whether c may be part of an identifier (any byte of a
// multi-byte character may).
func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= utf8.RuneSelf
}
