package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePHCRefuses(t *testing.T) {
	good := "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$nJd2mVhsXxUulTAuaQNmFmJf1bvR5Uz5aUpVuvx9RDk"
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("parsePHC(good) = %v", err)
	}
	for name, s := range map[string]string{
		"empty":               "",
		"argon2i":             strings.Replace(good, "argon2id", "argon2i", 1),
		"argon2d":             strings.Replace(good, "argon2id", "argon2d", 1),
		"version 16":          strings.Replace(good, "v=19", "v=16", 1),
		"no version":          strings.Replace(good, "$v=19", "", 1),
		"params reordered":    strings.Replace(good, "m=19456,t=2,p=1", "t=2,m=19456,p=1", 1),
		"leading zero":        strings.Replace(good, "t=2", "t=02", 1),
		"plus sign":           strings.Replace(good, "t=2", "t=+2", 1),
		"zero time":           strings.Replace(good, "t=2", "t=0", 1),
		"zero lanes":          strings.Replace(good, "p=1", "p=0", 1),
		"memory below 8p":     strings.Replace(good, "m=19456,t=2,p=1", "m=15,t=2,p=2", 1),
		"memory over 1 GiB":   strings.Replace(good, "m=19456", "m=1048577", 1),
		"time over bound":     strings.Replace(good, "t=2", "t=65", 1),
		"lanes over 255":      strings.Replace(good, "p=1", "p=256", 1),
		"overflow":            strings.Replace(good, "m=19456", "m=99999999999", 1),
		"extra param":         strings.Replace(good, "p=1", "p=1,k=2", 1),
		"padded salt":         strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdHNhbHRzYWx0c2FsdA==", 1),
		"non-canonical salt":  strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdHNhbHRzYWx0c2FsdB", 1),
		"short salt":          strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdA", 1),
		"short key":           good[:strings.LastIndex(good, "$")+1] + "c2FsdHNhbHRzYWx0",
		"newline in salt":     strings.Replace(good, "c2FsdHNh", "c2Fs\ndHNh", 1),
		"url base64":          strings.Replace(good, "c2FsdHNhbHRzYWx0c2FsdA", "c2FsdHNh-HRzYWx0c2FsdA", 1),
		"trailing dollar":     good + "$",
		"missing leading $":   good[1:],
		"bcrypt":              "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
		"plain text password": "correct horse battery staple",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parsePHC(s); !errors.Is(err, errBadHash) {
				t.Errorf("parsePHC(%q) = %v, want errBadHash", s, err)
			}
		})
	}
}

// FuzzParsePHC checks that the parser accepts only canonical PHC strings:
// whatever it accepts encodes back to the same bytes, within the bounds.
func FuzzParsePHC(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, errBadHash) {
				t.Fatalf("parsePHC(%q) error %v is not errBadHash", s, err)
			}
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("parsePHC(%q).String() = %q", s, got)
		}
		if h.params.Memory > maxMemory || h.params.Time > maxTime || h.params.Threads < 1 ||
			len(h.salt) < minSaltLen || len(h.key) < minKeyLen {
			t.Fatalf("parsePHC(%q) accepted out-of-bounds %+v", s, h.params)
		}
	})
}

func TestCanonicalUsername(t *testing.T) {
	for in, want := range map[string]string{
		"alice":       "alice",
		"ALICE":       "alice",
		"ａｌｉｃｅ":       "alice",
		"\u212Aelvin": "kelvin", // KELVIN SIGN is K by compatibility
		"Dr.Who-2":    "dr.who-2",
		"josé":        "josé",
		"jose\u0301":  "josé", // NFC
	} {
		if got, err := CanonicalUsername(in); err != nil || got != want {
			t.Errorf("CanonicalUsername(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", " ", "a b", "alice ", "tab\there", "nul\x00", "\xff", strings.Repeat("a", 129)} {
		if got, err := CanonicalUsername(in); !errors.Is(err, ErrInvalidUsername) {
			t.Errorf("CanonicalUsername(%q) = %q, %v; want ErrInvalidUsername", in, got, err)
		}
	}
}

// FuzzCanonicalUsername checks that the mapping is idempotent and bounded:
// a stored name maps to itself, so lookup by the stored form finds it.
func FuzzCanonicalUsername(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		out, err := CanonicalUsername(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidUsername) {
				t.Fatalf("CanonicalUsername(%q) error %v", in, err)
			}
			return
		}
		if out == "" || len(out) > maxUsernameBytes {
			t.Fatalf("CanonicalUsername(%q) = %q", in, out)
		}
		again, err := CanonicalUsername(out)
		if err != nil || again != out {
			t.Fatalf("CanonicalUsername(%q) = %q, but that maps to %q, %v", in, out, again, err)
		}
	})
}
