package authserver

import "testing"

// A client id never begins with '-' (a flag to the command line) or '_';
// one in 32 random ids would.
func TestClientIDsBeginWithALetterOrDigit(t *testing.T) {
	seen := map[string]bool{}
	for range 3000 {
		id, err := newClientID()
		if err != nil {
			t.Fatal(err)
		}
		if id[0] == '-' || id[0] == '_' || len(id) != 22 {
			t.Fatalf("client id %q", id)
		}
		if seen[id] {
			t.Fatalf("client id %q twice", id)
		}
		seen[id] = true
	}
}
