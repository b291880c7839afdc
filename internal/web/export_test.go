package web

import "time"

// SetNow sets the clock Open and Seal use.
func (s *Sealed) SetNow(now func() time.Time) { s.now = now }
