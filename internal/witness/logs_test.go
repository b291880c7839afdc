package witness

import (
	"crypto/rand"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParseLogList(t *testing.T) {
	_, v1, err := note.GenerateKey(rand.Reader, "a.example/log")
	if err != nil {
		t.Fatal(err)
	}
	_, v2, err := note.GenerateKey(rand.Reader, "b.example/log")
	if err != nil {
		t.Fatal(err)
	}
	logs, err := ParseLogList([]byte("# partner logs\n\n  " + v1 + "  \n" + v2 + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 2 || logs[0].Name() != "a.example/log" || logs[1].Name() != "b.example/log" {
		t.Fatalf("parsed %d logs", len(logs))
	}
	for name, bad := range map[string]string{
		"empty":           "# nothing\n\n",
		"not a key":       "a.example/log\n",
		"private key":     "PRIVATE+KEY+a.example/log+00000000+AAAA\n",
		"listed twice":    v1 + "\n" + v1 + "\n",
		"two keys a line": v1 + " " + v2 + "\n",
	} {
		if _, err := ParseLogList([]byte(bad)); !errors.Is(err, ErrBadLogList) {
			t.Errorf("%s: %v, want ErrBadLogList", name, err)
		}
	}
}
