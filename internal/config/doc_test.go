package config_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/config"
)

var update = flag.Bool("update", false, "rewrite docs/CONFIGURATION.md from the settings")

// TestConfigurationDoc keeps docs/CONFIGURATION.md in step with the
// settings: every setting, its environment variable and its default.
// Run with -update after changing a setting.
func TestConfigurationDoc(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`# Configuration

Warden reads one YAML file (` + "`warden serve --config warden.yaml`" + `); every setting
can also be set with an environment variable, which wins over the file. Unknown
keys in the file and unknown ` + "`WARDEN_*`" + ` variables are errors, so a typo never
leaves a security setting at a value nobody chose. The defaults are the secure
choice. Check a configuration with ` + "`warden config check --config FILE`" + `.

Durations are Go durations (` + "`30s`, `2m`" + `), sizes are bytes or have a unit
(` + "`10MiB`" + `), lists are YAML sequences in the file and comma-separated in the
environment. Secrets are never values, only paths of files (settings ending in
` + "`_file`" + `).

Example:

` + "```yaml" + `
data_dir: /var/lib/warden
server:
  addr: 0.0.0.0:443
  base_url: https://fhir.example.org/fhir
  tls:
    cert_file: /etc/warden/tls/server.pem
    key_file: /etc/warden/tls/server-key.pem
store:
  url: postgres://warden@db.internal/warden?passfile=/etc/warden/pgpass
` + "```" + `

This table is generated from the code (` + "`go test ./internal/config -run TestConfigurationDoc -update`" + `).

| setting | environment variable | type | default | meaning |
|---|---|---|---|---|
`)
	for _, s := range config.Describe() {
		def := s.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | `%s` | %s |\n", s.Path, s.Env, s.Type, def, strings.ReplaceAll(s.Doc, "|", "\\|"))
	}
	path := filepath.Join("..", "..", "docs", "CONFIGURATION.md")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Errorf("docs/CONFIGURATION.md is out of date: run go test ./internal/config -run TestConfigurationDoc -update")
	}
}
