package sqlstore

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct {
		p, end string
		ok     bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"abc", "abd", true},
		{"a\u007f", "a\u0080", true},
		{"é", "ê", true},
		{"a\ud7ff", "a\ue000", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF\U0010FFFF", "", false},
		{"Observation.", "Observation/", true},
	} {
		end, ok := prefixEnd(c.p)
		if end != c.end || ok != c.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", c.p, end, ok, c.end, c.ok)
		}
	}
}

// FuzzPrefixEnd checks the property the prefix search relies on: every
// string that starts with p sorts at or after p and before prefixEnd(p).
func FuzzPrefixEnd(f *testing.F) {
	for _, s := range []string{"a", "chalmers", "\U0010FFFF", "x\ud7ff", "é"} {
		f.Add(s, "tail")
	}
	f.Fuzz(func(t *testing.T, p, tail string) {
		p = key(p)
		end, ok := prefixEnd(p)
		if !ok {
			if p != "" && strings.Trim(p, "\U0010FFFF") != "" {
				t.Fatalf("no end for %q", p)
			}
			return
		}
		if !utf8.ValidString(end) || end <= p {
			t.Fatalf("prefixEnd(%q) = %q", p, end)
		}
		if s := p + key(tail); s >= end {
			t.Fatalf("%q starts with %q but is not below %q", s, p, end)
		}
	})
}

func TestKey(t *testing.T) {
	long := strings.Repeat("é", MaxKeyBytes)
	if k := key(long); len(k) > MaxKeyBytes || !utf8.ValidString(k) || !strings.HasPrefix(long, k) {
		t.Errorf("key of a long value: %d bytes, valid %v", len(k), utf8.ValidString(k))
	}
	if k := key("a\x00b\xffc"); k != "a\uFFFDb\uFFFDc" {
		t.Errorf("key(NUL and invalid UTF-8) = %q", k)
	}
}
