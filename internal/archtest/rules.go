package archtest

import (
	"fmt"
	"strings"
)

// A rule checks one package of the module.
type rule struct {
	name  string
	check func(m *module, p *pkg) []Violation
}

// pure packages decide things; they never speak HTTP, so that a decision
// can be tested, fuzzed and reasoned about without a server.
var purePackages = []string{
	"internal/fhir",
	"internal/smart",
	"internal/policy",
	"internal/consent",
	"internal/labels",
	"internal/keyring",
}

var rules = []rule{
	{"load", checkLoad},
	{"cmd-imports-only-cli", checkCmd},
	{"cli-only-from-cmd", checkCLIImporters},
	{"pure-no-http", checkPure},
	{"store-no-http-policy-api", checkStore},
	{"scan-outside-client", checkScan},
	{"test-helpers-only-in-tests", checkTestHelpers},
	{"no-init", checkInit},
	{"package-doc", checkDoc},
}

// checkLoad reports what kept a package from being read: a rule cannot
// vouch for code it could not see. (A missing dependency is left to the
// compiler, which names it once, where each importer would repeat it.)
func checkLoad(m *module, p *pkg) []Violation {
	var out []Violation
	if p.Error != nil {
		out = append(out, Violation{Package: p.rel, Pos: m.dirPos(p), Msg: "go list: " + p.Error.Err})
	}
	for _, e := range p.parseErrs {
		out = append(out, Violation{Package: p.rel, Pos: m.dirPos(p), Msg: "parse: " + e})
	}
	return named("load", out)
}

// checkCmd keeps mains to a few lines: all wiring lives in internal/cli,
// where it can be tested in-process.
func checkCmd(m *module, p *pkg) []Violation {
	if !under(p.rel, "cmd") {
		return nil
	}
	var out []Violation
	for _, imp := range p.Imports {
		if m.isStd(imp) || imp == m.path+"/internal/cli" {
			continue
		}
		out = append(out, Violation{Package: p.rel, Pos: p.importPos[imp],
			Msg: fmt.Sprintf("imports %s: a command imports only internal/cli and the standard library", m.relPath(imp))})
	}
	return named("cmd-imports-only-cli", out)
}

// checkCLIImporters keeps internal/cli at the top of the graph: it knows
// every concrete type, so nothing but a main may depend on it.
func checkCLIImporters(m *module, p *pkg) []Violation {
	if under(p.rel, "cmd") || under(p.rel, "internal/cli") {
		return nil
	}
	cli := m.path + "/internal/cli"
	var out []Violation
	for _, imports := range []map[string]string{p.importPos, p.testImport} {
		for imp, pos := range imports {
			if imp == cli || strings.HasPrefix(imp, cli+"/") {
				out = append(out, Violation{Package: p.rel, Pos: pos,
					Msg: fmt.Sprintf("imports %s: only cmd/... may import internal/cli", m.relPath(imp))})
			}
		}
	}
	return named("cli-only-from-cmd", out)
}

// checkPure keeps HTTP out of the packages that decide things.
func checkPure(m *module, p *pkg) []Violation {
	for _, pure := range purePackages {
		if under(p.rel, pure) {
			return named("pure-no-http", m.forbid(p, isHTTP, "a pure package ("+pure+") never depends on net/http"))
		}
	}
	return nil
}

// checkStore keeps storage backends ignorant of HTTP and of authorization:
// a store stores; the API and the policy engine decide what is served.
func checkStore(m *module, p *pkg) []Violation {
	if !under(p.rel, "internal/store") {
		return nil
	}
	policy, api := m.path+"/internal/policy", m.path+"/internal/fhirapi"
	forbidden := func(ip string) bool {
		return isHTTP(ip) || ip == policy || strings.HasPrefix(ip, policy+"/") || ip == api || strings.HasPrefix(ip, api+"/")
	}
	return named("store-no-http-policy-api", m.forbid(p, forbidden, "a store never depends on net/http, internal/policy or internal/fhirapi"))
}

// checkScan keeps the scanner an outside client: it sees a FHIR server only
// through its API, as an attacker would.
func checkScan(m *module, p *pkg) []Violation {
	if !under(p.rel, "internal/scan") {
		return nil
	}
	store, policy := m.path+"/internal/store", m.path+"/internal/policy"
	forbidden := func(ip string) bool {
		return ip == store || strings.HasPrefix(ip, store+"/") || ip == policy || strings.HasPrefix(ip, policy+"/")
	}
	return named("scan-outside-client", m.forbid(p, forbidden, "the scanner never depends on internal/store or internal/policy"))
}

// checkTestHelpers keeps packages named *test (storetest, httptest, ...)
// out of the binary: only tests and other helpers may import them.
func checkTestHelpers(m *module, p *pkg) []Violation {
	if isTestHelper(p.Name) {
		return nil
	}
	var out []Violation
	for _, imp := range p.Imports {
		name := ""
		if lp := m.all[imp]; lp != nil {
			name = lp.Name
		}
		if isTestHelper(name) {
			out = append(out, Violation{Package: p.rel, Pos: p.importPos[imp],
				Msg: fmt.Sprintf("imports test helper %s from non-test code: import it from _test.go files only", m.relPath(imp))})
		}
	}
	return named("test-helpers-only-in-tests", out)
}

// checkInit forbids init functions: side effects at import time (global
// registries, flags, network) make the program impossible to test as a
// function.
func checkInit(m *module, p *pkg) []Violation {
	var out []Violation
	for _, pos := range p.inits {
		out = append(out, Violation{Package: p.rel, Pos: pos,
			Msg: "func init: do the work in a constructor the caller runs (or a sync.OnceValue)"})
	}
	return named("no-init", out)
}

// checkDoc asks every package to say what it owns, in the form go doc
// expects: "Package name ..." (a command's comment may start any way).
func checkDoc(m *module, p *pkg) []Violation {
	if len(p.GoFiles)+len(p.CgoFiles) == 0 || len(p.parseErrs) > 0 {
		return nil
	}
	var msg string
	switch {
	case strings.TrimSpace(p.doc) == "":
		msg = "no package doc comment: say what the package owns and what it must never do"
	case p.Name != "main" && !startsWithPackage(p.doc, p.Name):
		msg = fmt.Sprintf("the package doc comment should start with %q", "Package "+p.Name+" ")
	default:
		return nil
	}
	return named("package-doc", []Violation{{Package: p.rel, Pos: m.dirPos(p), Msg: msg}})
}

// forbid reports each forbidden package that p reaches through its
// non-test imports, with the chain of imports that reaches it.
func (m *module) forbid(p *pkg, forbidden func(importPath string) bool, why string) []Violation {
	var out []Violation
	for _, chain := range m.pathTo(p, forbidden) {
		rel := make([]string, len(chain))
		for i, ip := range chain {
			rel[i] = m.relPath(ip)
		}
		msg := "imports " + rel[0]
		if len(rel) > 1 {
			msg = "depends on " + rel[len(rel)-1] + " through " + strings.Join(rel, " → ")
		}
		out = append(out, Violation{Package: p.rel, Pos: p.importPos[chain[0]], Msg: msg + ": " + why})
	}
	return out
}

func named(rule string, vs []Violation) []Violation {
	for i := range vs {
		vs[i].Rule = rule
	}
	return vs
}

// under reports whether the relative package path rel is dir or below it.
func under(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

func isHTTP(importPath string) bool {
	return importPath == "net/http" || strings.HasPrefix(importPath, "net/http/")
}

// isTestHelper reports whether a package of this name exists to be used by
// tests: storetest, httptest, fstest.
func isTestHelper(name string) bool {
	return strings.HasSuffix(name, "test") && name != "test"
}

// startsWithPackage reports whether doc begins "Package name", as go doc
// and gopls expect.
func startsWithPackage(doc, name string) bool {
	rest, ok := strings.CutPrefix(doc, "Package "+name)
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == '\n')
}
