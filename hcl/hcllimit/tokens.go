package hcllimit

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/weftmesh/weft/core/inputlimit"
)

// tokenDepth is Depth counted on the tokens of HCL's own lexer, the same
// way. It is exact about what is code, string and comment, but it costs a
// token per word and symbol, so Depth uses it only where its byte scan
// cannot follow the lexer cheaply; the tests hold the byte scan to never
// count less than this.
func tokenDepth(src []byte, limit int) error {
	_, err := tokenScan(src, limit)
	return err
}

// tokenScan returns the greatest depth reached, stopping at the first
// place past limit.
func tokenScan(src []byte, limit int) (int, error) {
	toks, _ := hclsyntax.LexConfig(src, "", hcl.InitialPos)
	type level struct {
		kind int
		ops  int
	}
	stack := []level{{kind: kRoot}}
	depth, maxDepth := 0, 0
	var at hcl.Pos
	check := func() error {
		if depth > maxDepth {
			maxDepth = depth
		}
		if depth > limit {
			return &inputlimit.TooDeepError{Limit: limit, Line: at.Line, Column: at.Column, Offset: at.Byte}
		}
		return nil
	}
	push := func(kind int) error {
		stack = append(stack, level{kind: kind})
		depth++
		return check()
	}
	pop := func() {
		depth -= 1 + stack[len(stack)-1].ops
		stack = stack[:len(stack)-1]
	}
	// popTo pops down to and including the innermost level of one of kinds,
	// not past a level of one of stops.
	popTo := func(kinds []int, stops []int) {
		for j := len(stack) - 1; j > 0; j-- {
			k := stack[j].kind
			for _, w := range kinds {
				if k == w {
					for len(stack) > j {
						pop()
					}
					return
				}
			}
			for _, w := range stops {
				if k == w {
					return
				}
			}
		}
	}
	op := func() error {
		stack[len(stack)-1].ops++
		depth++
		return check()
	}
	reset := func() {
		depth -= stack[len(stack)-1].ops
		stack[len(stack)-1].ops = 0
	}
	for i, t := range toks {
		at = t.Range.Start
		var err error
		switch t.Type {
		case hclsyntax.TokenOBrace:
			err = push(kBrace)
		case hclsyntax.TokenOBrack:
			err = push(kBrack)
		case hclsyntax.TokenOParen:
			err = push(kParen)
		case hclsyntax.TokenOQuote:
			err = push(kString)
		case hclsyntax.TokenOHeredoc:
			err = push(kHeredoc)
		case hclsyntax.TokenTemplateInterp:
			err = push(kInterp)
		case hclsyntax.TokenTemplateControl:
			word := ""
			if i+1 < len(toks) && toks[i+1].Type == hclsyntax.TokenIdent {
				word = string(toks[i+1].Bytes)
			}
			switch word {
			case "endif", "endfor":
				if stack[len(stack)-1].ops > 0 {
					stack[len(stack)-1].ops--
					depth--
				}
			case "else":
			default:
				stack[len(stack)-1].ops++
				depth++
			}
			err = push(kInterp)
		case hclsyntax.TokenCBrace:
			popTo([]int{kBrace, kInterp}, []int{kString, kHeredoc})
		case hclsyntax.TokenTemplateSeqEnd:
			popTo([]int{kInterp, kBrace}, []int{kString, kHeredoc})
		case hclsyntax.TokenCBrack:
			if stack[len(stack)-1].kind == kBrack {
				pop()
				err = op()
			}
		case hclsyntax.TokenCParen:
			if stack[len(stack)-1].kind == kParen {
				pop()
			}
		case hclsyntax.TokenCQuote:
			popTo([]int{kString}, nil)
		case hclsyntax.TokenCHeredoc:
			popTo([]int{kHeredoc}, nil)
		case hclsyntax.TokenComma, hclsyntax.TokenEqual:
			reset()
		case hclsyntax.TokenNewline, hclsyntax.TokenComment:
			if t.Type == hclsyntax.TokenComment && (len(t.Bytes) == 0 || t.Bytes[len(t.Bytes)-1] != '\n') {
				break // a /* */ comment ends no line
			}
			if k := stack[len(stack)-1].kind; k == kRoot || k == kBrace {
				reset()
			}
		case hclsyntax.TokenBang, hclsyntax.TokenMinus, hclsyntax.TokenQuestion,
			hclsyntax.TokenPlus, hclsyntax.TokenStar, hclsyntax.TokenSlash, hclsyntax.TokenPercent,
			hclsyntax.TokenAnd, hclsyntax.TokenOr, hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual,
			hclsyntax.TokenLessThan, hclsyntax.TokenLessThanEq, hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq:
			err = op()
		}
		if err != nil {
			return maxDepth, err
		}
	}
	return maxDepth, nil
}
