package config

import (
	"errors"
	"strconv"
	"strings"
)

// Errors that a [SettingError] wraps; test for them with errors.Is.
var (
	// ErrUnknown: a key in the file or a WARDEN_* variable names no setting.
	ErrUnknown = errors.New("unknown setting")
	// ErrInvalid: a value does not parse, or Validate refuses it.
	ErrInvalid = errors.New("invalid value")
)

// A SettingError reports a problem with one setting. Load and Validate may
// return several, joined with errors.Join.
type SettingError struct {
	Source  string // configuration file, or "environment"; empty for Validate
	Line    int    // line in Source, when known
	Setting string // dotted path ("server.addr") or variable ("WARDEN_SERVER_ADDR")
	Err     error  // wraps ErrUnknown or ErrInvalid
}

func (e *SettingError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Setting != "" {
		b.WriteString(e.Setting)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *SettingError) Unwrap() error { return e.Err }
