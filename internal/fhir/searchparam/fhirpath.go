package searchparam

import (
	"fmt"
	"strconv"
	"strings"
)

// This file parses the subset of FHIRPath (HL7 FHIRPath N1, normative in
// FHIR R4) that R4 search parameter expressions use into a small syntax
// tree; compile.go gives it meaning. The input is trusted specification
// text, so the parser aims for clear errors rather than resistance to
// hostile input, but it never panics and bounds its nesting.
//
// Grammar, loosest binding first (FHIRPath, "Operator precedence"):
//
//	expr     = and { "or" and }
//	and      = equality { "and" equality }
//	equality = union [ ( "=" | "!=" ) union ]
//	union    = typed { "|" typed }
//	typed    = postfix [ ( "as" | "is" ) typeName ]
//	postfix  = term { "." invocation | "[" integer "]" }
//	term     = "(" expr ")" | "'" string "'" | "true" | "false" | integer
//	         | "%resource" | invocation
//	invocation = identifier [ "(" [ expr { "," expr } ] ")" ]

// exprKind is the kind of a syntax tree node.
type exprKind uint8

const (
	exMember   exprKind = iota // name, on target (or on the input when target is nil)
	exCall                     // name(args…), on target (or on the input)
	exIndex                    // target[index]
	exAs                       // target as name
	exIs                       // target is name
	exUnion                    // args[0] | args[1]
	exEq                       // args[0] = args[1]
	exNe                       // args[0] != args[1]
	exAnd                      // args[0] and args[1]
	exOr                       // args[0] or args[1]
	exString                   // 'name'
	exBool                     // name is "true" or "false"
	exInt                      // index
	exResource                 // %resource
)

// expr is one node of a parsed FHIRPath expression.
type expr struct {
	kind   exprKind
	name   string
	index  int
	target *expr
	args   []*expr
}

// String prints the node back as FHIRPath, for error messages and tests.
func (e *expr) String() string {
	prefix := func() string {
		if e.target == nil {
			return ""
		}
		return e.target.String() + "."
	}
	switch e.kind {
	case exMember:
		return prefix() + e.name
	case exCall:
		args := make([]string, len(e.args))
		for i, a := range e.args {
			args[i] = a.String()
		}
		return prefix() + e.name + "(" + strings.Join(args, ", ") + ")"
	case exIndex:
		return e.target.String() + "[" + strconv.Itoa(e.index) + "]"
	case exAs, exIs:
		op := " as "
		if e.kind == exIs {
			op = " is "
		}
		return "(" + e.target.String() + op + e.name + ")"
	case exUnion, exEq, exNe, exAnd, exOr:
		op := map[exprKind]string{exUnion: " | ", exEq: " = ", exNe: " != ", exAnd: " and ", exOr: " or "}[e.kind]
		return "(" + e.args[0].String() + op + e.args[1].String() + ")"
	case exString:
		return "'" + e.name + "'"
	case exBool:
		return e.name
	case exInt:
		return strconv.Itoa(e.index)
	case exResource:
		return "%resource"
	}
	return "?"
}

// maxDepth bounds parenthesis and function-argument nesting.
const maxDepth = 32

type parser struct {
	src   string
	pos   int
	depth int
}

// parseFHIRPath parses one expression.
func parseFHIRPath(src string) (*expr, error) {
	p := &parser{src: src}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected %q", p.src[p.pos:])
	}
	return e, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("fhirpath %q at offset %d: %s", p.src, p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) space() {
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

// peekWord reports whether the next token is the keyword w (not merely a
// prefix of a longer identifier).
func (p *parser) peekWord(w string) bool {
	p.space()
	rest := p.src[p.pos:]
	return strings.HasPrefix(rest, w) && (len(rest) == len(w) || !isIdentByte(rest[len(w)]))
}

// peek reports whether the next token starts with the punctuation s.
func (p *parser) peek(s string) bool {
	p.space()
	return strings.HasPrefix(p.src[p.pos:], s)
}

func isIdentByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func (p *parser) binary(next func() (*expr, error), ops map[string]exprKind, words bool) (*expr, error) {
	left, err := next()
	if err != nil {
		return nil, err
	}
	for {
		matched := false
		for tok, kind := range ops {
			if (words && p.peekWord(tok)) || (!words && p.peek(tok)) {
				p.pos += len(tok)
				right, err := next()
				if err != nil {
					return nil, err
				}
				left = &expr{kind: kind, args: []*expr{left, right}}
				matched = true
				break
			}
		}
		if !matched {
			return left, nil
		}
	}
}

func (p *parser) expr() (*expr, error) {
	return p.binary(p.and, map[string]exprKind{"or": exOr}, true)
}

func (p *parser) and() (*expr, error) {
	return p.binary(p.equality, map[string]exprKind{"and": exAnd}, true)
}

func (p *parser) equality() (*expr, error) {
	left, err := p.union()
	if err != nil {
		return nil, err
	}
	kind := exEq
	switch {
	case p.peek("!="):
		kind = exNe
		p.pos += 2
	case p.peek("="):
		p.pos++
	default:
		return left, nil
	}
	right, err := p.union()
	if err != nil {
		return nil, err
	}
	return &expr{kind: kind, args: []*expr{left, right}}, nil
}

func (p *parser) union() (*expr, error) {
	return p.binary(p.typed, map[string]exprKind{"|": exUnion}, false)
}

func (p *parser) typed() (*expr, error) {
	e, err := p.postfix()
	if err != nil {
		return nil, err
	}
	for _, op := range []struct {
		word string
		kind exprKind
	}{{"as", exAs}, {"is", exIs}} {
		if p.peekWord(op.word) {
			p.pos += len(op.word)
			name, err := p.typeName()
			if err != nil {
				return nil, err
			}
			return &expr{kind: op.kind, name: name, target: e}, nil
		}
	}
	return e, nil
}

// typeName reads a type specifier, dropping a FHIR or System namespace.
func (p *parser) typeName() (string, error) {
	name, err := p.identifier()
	if err != nil {
		return "", err
	}
	if (name == "FHIR" || name == "System") && p.peek(".") {
		p.pos++
		return p.identifier()
	}
	return name, nil
}

func (p *parser) identifier() (string, error) {
	p.space()
	start := p.pos
	if p.pos < len(p.src) && p.src[p.pos] == '`' {
		end := strings.IndexByte(p.src[p.pos+1:], '`')
		if end < 0 {
			return "", p.errorf("unterminated `identifier`")
		}
		p.pos += end + 2
		return p.src[start+1 : p.pos-1], nil
	}
	for p.pos < len(p.src) && isIdentByte(p.src[p.pos]) {
		p.pos++
	}
	if p.pos == start || '0' <= p.src[start] && p.src[start] <= '9' {
		p.pos = start
		return "", p.errorf("expected an identifier")
	}
	return p.src[start:p.pos], nil
}

func (p *parser) postfix() (*expr, error) {
	e, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.peek("."):
			p.pos++
			inv, err := p.invocation()
			if err != nil {
				return nil, err
			}
			inv.target = e
			e = inv
		case p.peek("["):
			p.pos++
			idx, err := p.integer()
			if err != nil {
				return nil, err
			}
			if !p.peek("]") {
				return nil, p.errorf("expected ]")
			}
			p.pos++
			e = &expr{kind: exIndex, target: e, index: idx}
		default:
			return e, nil
		}
	}
}

func (p *parser) integer() (int, error) {
	p.space()
	start := p.pos
	for p.pos < len(p.src) && '0' <= p.src[p.pos] && p.src[p.pos] <= '9' {
		p.pos++
	}
	n, err := strconv.Atoi(p.src[start:p.pos])
	if err != nil {
		return 0, p.errorf("expected an integer")
	}
	return n, nil
}

func (p *parser) term() (*expr, error) {
	p.space()
	if p.pos == len(p.src) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.src[p.pos]; {
	case c == '(':
		p.pos++
		if p.depth++; p.depth > maxDepth {
			return nil, p.errorf("nested too deeply")
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.depth--
		if !p.peek(")") {
			return nil, p.errorf("expected )")
		}
		p.pos++
		return e, nil
	case c == '\'':
		return p.stringLiteral()
	case '0' <= c && c <= '9':
		n, err := p.integer()
		return &expr{kind: exInt, index: n}, err
	case c == '%':
		p.pos++
		name, err := p.identifier()
		if err != nil {
			return nil, err
		}
		if name != "resource" {
			return nil, p.errorf("unsupported variable %%%s", name)
		}
		return &expr{kind: exResource}, nil
	}
	if p.peekWord("true") || p.peekWord("false") {
		start := p.pos
		for p.pos < len(p.src) && isIdentByte(p.src[p.pos]) {
			p.pos++
		}
		return &expr{kind: exBool, name: p.src[start:p.pos]}, nil
	}
	return p.invocation()
}

// stringLiteral reads 'text' with FHIRPath's backslash escapes.
func (p *parser) stringLiteral() (*expr, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		p.pos++
		switch c {
		case '\'':
			return &expr{kind: exString, name: b.String()}, nil
		case '\\':
			if p.pos == len(p.src) {
				return nil, p.errorf("unterminated string")
			}
			esc := p.src[p.pos]
			p.pos++
			switch esc {
			case 't':
				esc = '\t'
			case 'n':
				esc = '\n'
			case 'r':
				esc = '\r'
			case 'f':
				esc = '\f'
			}
			b.WriteByte(esc)
		default:
			b.WriteByte(c)
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *parser) invocation() (*expr, error) {
	name, err := p.identifier()
	if err != nil {
		return nil, err
	}
	if !p.peek("(") {
		return &expr{kind: exMember, name: name}, nil
	}
	p.pos++
	if p.depth++; p.depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	call := &expr{kind: exCall, name: name}
	if !p.peek(")") {
		for {
			arg, err := p.expr()
			if err != nil {
				return nil, err
			}
			call.args = append(call.args, arg)
			if !p.peek(",") {
				break
			}
			p.pos++
		}
	}
	if !p.peek(")") {
		return nil, p.errorf("expected )")
	}
	p.pos++
	p.depth--
	return call, nil
}
