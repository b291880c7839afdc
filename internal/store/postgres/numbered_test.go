package postgres

import "testing"

func TestNumbered(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                         "SELECT 1",
		"a = ? AND b = ?":                  "a = $1 AND b = $2",
		"x = '?' AND y = ? AND \"q?\" = ?": "x = '?' AND y = $1 AND \"q?\" = $2",
		"COALESCE(a || '/' || b, c) = ?":   "COALESCE(a || '/' || b, c) = $1",
		"VALUES (?,?),(?,?)":               "VALUES ($1,$2),($3,$4)",
	} {
		if got := numbered(in); got != want {
			t.Errorf("numbered(%q) = %q, want %q", in, got, want)
		}
	}
}
