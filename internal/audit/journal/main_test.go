package journal

import (
	"os"
	"testing"
)

// TestMain serves as the fsync helper when this test binary is started
// as one (the tests' journals start helpers, as the server's do).
func TestMain(m *testing.M) {
	if code, helper := FsyncHelperMain(); helper {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
