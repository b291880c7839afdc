package search

import (
	"strings"
	"testing"
)

func TestEscapes(t *testing.T) {
	tests := []struct {
		in    string
		valid bool
		parts []string // split at unescaped commas, then unescaped
	}{
		{"a", true, []string{"a"}},
		{"a,b", true, []string{"a", "b"}},
		{`a\,b`, true, []string{"a,b"}},
		{`a\\,b`, true, []string{`a\`, "b"}},
		{`a\\\,b`, true, []string{`a\,b`}},
		{`a\$b\|c`, true, []string{"a$b|c"}},
		{`é\,ü,ß`, true, []string{"é,ü", "ß"}},
		{",", true, []string{"", ""}},
		{`a\b`, false, nil},
		{`a\`, false, nil},
		{`\n`, false, nil},
	}
	for _, tt := range tests {
		if got := checkEscapes(tt.in); got != tt.valid {
			t.Errorf("checkEscapes(%q) = %v", tt.in, got)
		}
		if !tt.valid {
			continue
		}
		var parts []string
		for rest, more := tt.in, true; more; {
			var p string
			p, rest, more = cut(rest, ',')
			parts = append(parts, unescape(p))
		}
		if strings.Join(parts, "\x00") != strings.Join(tt.parts, "\x00") {
			t.Errorf("split %q = %q, want %q", tt.in, parts, tt.parts)
		}
		if n := count(tt.in, ','); n != len(tt.parts)-1 {
			t.Errorf("count(%q) = %d, want %d", tt.in, n, len(tt.parts)-1)
		}
	}
}

func TestCheckValue(t *testing.T) {
	for _, ok := range []string{"", "peter", "Müller", "a b", `a\,b`, strings.Repeat("é", maxValueBytes/2)} {
		if r := checkValue(ok); r != "" {
			t.Errorf("checkValue(%q) = %q, want ok", ok, r)
		}
	}
	for _, bad := range []string{"\x00", "a\tb", "a\nb", "\x7f", "\u0085", "\xff", "\xc3", `a\b`, strings.Repeat("a", maxValueBytes+1)} {
		if checkValue(bad) == "" {
			t.Errorf("checkValue(%q) ok, want a reason", bad)
		}
	}
}
