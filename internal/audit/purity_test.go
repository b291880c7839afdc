package audit

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHTTP: the package is pure (the HTTP layer fills a Record); not
// even a dependency of it may import net/http. Its test files may.
func TestNoHTTP(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool: ", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net/http" || strings.HasPrefix(dep, "net/http/") {
			t.Errorf("package audit depends on %s", dep)
		}
	}
}
