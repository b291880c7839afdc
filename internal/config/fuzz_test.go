package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad feeds Load arbitrary files and environments. Load must never
// panic; every failure must name its source; and whatever it accepts,
// Validate judges the same way twice, and writing the result back as
// environment variables (the way Describe writes defaults) loads the same
// configuration. The seeds are in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	f.Fuzz(func(t *testing.T, file, environ string) {
		env := strings.Split(environ, "\n")
		cfg, err := load("fuzz.yaml", []byte(file), env)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "fuzz.yaml:") && !strings.HasPrefix(msg, envSource+": ") {
				t.Fatalf("error does not name its source: %q", msg)
			}
			var se *SettingError
			if errors.As(err, &se) && !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("SettingError wraps neither ErrUnknown nor ErrInvalid: %q", msg)
			}
			return
		}

		first, second := cfg.Validate(), cfg.Validate()
		if errString(first) != errString(second) {
			t.Fatalf("Validate is not deterministic:\n%v\n---\n%v", first, second)
		}
		if first != nil && !errors.Is(first, ErrInvalid) {
			t.Fatalf("Validate error does not wrap ErrInvalid: %v", first)
		}

		back, err := load("", nil, environment(cfg))
		if err != nil {
			t.Fatalf("loading %+v back from the environment: %v", cfg, err)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Fatalf("environment round trip:\n got %+v\nwant %+v", back, cfg)
		}
	})
}

// environment writes every setting of cfg as a WARDEN_* variable.
func environment(cfg Config) []string {
	v := reflect.ValueOf(cfg)
	var env []string
	for _, f := range configSchema().leaves {
		env = append(env, f.env+"="+formatValue(v.FieldByIndex(f.index)))
	}
	return env
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
