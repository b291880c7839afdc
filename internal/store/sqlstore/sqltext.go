package sqlstore

import (
	"strings"
	"unicode/utf8"
)

// sqlText is a piece of SQL with "?" placeholders and its arguments, in
// order.
type sqlText struct {
	sql  string
	args []any
}

// sqlBuf assembles SQL text and its arguments.
type sqlBuf struct {
	b    strings.Builder
	args []any
}

// s writes SQL text.
func (w *sqlBuf) s(parts ...string) *sqlBuf {
	for _, p := range parts {
		w.b.WriteString(p)
	}
	return w
}

// arg writes a placeholder for v.
func (w *sqlBuf) arg(v any) *sqlBuf {
	w.b.WriteByte('?')
	w.args = append(w.args, v)
	return w
}

// t writes a piece of SQL with its arguments.
func (w *sqlBuf) t(t sqlText) *sqlBuf {
	w.b.WriteString(t.sql)
	w.args = append(w.args, t.args...)
	return w
}

// in writes "expr IN (values)" with values ([]int64 or []string) as one
// list argument of dialect d.
func (w *sqlBuf) in(d Dialect, expr string, values any) *sqlBuf {
	w.b.WriteString(d.InList(expr))
	w.args = append(w.args, d.List(values))
	return w
}

func (w *sqlBuf) text() sqlText { return sqlText{sql: w.b.String(), args: w.args} }

// text makes a sqlText from SQL and arguments.
func text(sql string, args ...any) sqlText { return sqlText{sql: sql, args: args} }

// join joins pieces with sep, wrapping each in parentheses when wrap.
func join(parts []sqlText, sep string, wrap bool) sqlText {
	var w sqlBuf
	for i, p := range parts {
		if i > 0 {
			w.s(sep)
		}
		if wrap {
			w.s("(").t(p).s(")")
		} else {
			w.t(p)
		}
	}
	return w.text()
}

// prefixEnd returns the smallest string greater than every string that
// starts with p, in code point order (byte order of UTF-8), or ok false
// when there is none (p empty or made only of U+10FFFF). p MUST be valid
// UTF-8 (see key).
func prefixEnd(p string) (string, bool) {
	for len(p) > 0 {
		r, size := utf8.DecodeLastRuneInString(p)
		head := p[:len(p)-size]
		switch {
		case r == 0xD7FF:
			// Skip the surrogates, which UTF-8 cannot encode.
			return head + string(rune(0xE000)), true
		case r < utf8.MaxRune:
			return head + string(r+1), true
		}
		p = head
	}
	return "", false
}
