package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// module is what Check knows of the module: its own packages, parsed, and
// the import graph of everything they depend on.
type module struct {
	root string              // directory of go.mod
	path string              // module path
	own  []*pkg              // the module's packages, in 'go list' order
	all  map[string]*listPkg // every package by import path, dependencies included
}

// listPkg is the part of 'go list -json' output that the rules read.
type listPkg struct {
	ImportPath   string
	Name         string
	Dir          string
	Standard     bool
	GoFiles      []string
	CgoFiles     []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Module       *struct {
		Path string
		Main bool
	}
	Error *struct{ Err string }
}

// pkg is one of the module's packages with what parsing its files tells.
type pkg struct {
	*listPkg
	rel        string            // import path relative to the module
	importPos  map[string]string // non-test import → first "file:line"
	testImport map[string]string // import of a _test.go file → first "file:line"
	inits      []string          // positions of func init in non-test files
	doc        string            // package doc comment of the non-test files
	parseErrs  []string
}

const listFields = "ImportPath,Name,Dir,Standard,GoFiles,CgoFiles,TestGoFiles,XTestGoFiles,Imports,TestImports,XTestImports,Module,Error"

// load runs 'go list -deps' on the module at dir and parses its packages.
func load(dir string) (*module, error) {
	cmd := exec.Command("go", "list", "-e", "-deps", "-json="+listFields, "./...")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	m := &module{root: dir, all: map[string]*listPkg{}}
	dec := json.NewDecoder(&stdout)
	for {
		lp := new(listPkg)
		if err := dec.Decode(lp); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list output: %v", err)
		}
		m.all[lp.ImportPath] = lp
		if lp.Module != nil && lp.Module.Main {
			m.path = lp.Module.Path
			m.own = append(m.own, &pkg{listPkg: lp})
		}
	}
	if len(m.own) == 0 {
		return nil, fmt.Errorf("go list in %s found no packages of the main module", dir)
	}
	for _, p := range m.own {
		p.rel = m.relPath(p.ImportPath)
		m.parse(p)
	}
	return m, nil
}

// relPath returns an import path relative to the module, or the path
// itself for packages of other modules.
func (m *module) relPath(importPath string) string {
	if importPath == m.path {
		return "."
	}
	if rest, ok := strings.CutPrefix(importPath, m.path+"/"); ok {
		return rest
	}
	return importPath
}

// parse reads p's files for import positions, init functions and the
// package doc comment.
func (m *module) parse(p *pkg) {
	p.importPos, p.testImport = map[string]string{}, map[string]string{}
	fset := token.NewFileSet()
	read := func(name string, test bool) {
		path := filepath.Join(p.Dir, name)
		mode := parser.ParseComments | parser.SkipObjectResolution
		if test {
			mode = parser.ImportsOnly | parser.SkipObjectResolution
		}
		f, err := parser.ParseFile(fset, path, nil, mode)
		if err != nil {
			p.parseErrs = append(p.parseErrs, err.Error())
			return
		}
		positions := p.importPos
		if test {
			positions = p.testImport
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err == nil && positions[ip] == "" {
				positions[ip] = m.pos(fset.Position(imp.Pos()))
			}
		}
		if test {
			return
		}
		if f.Doc != nil && p.doc == "" {
			p.doc = f.Doc.Text()
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
				p.inits = append(p.inits, m.pos(fset.Position(fn.Pos())))
			}
		}
	}
	for _, name := range append(append([]string(nil), p.GoFiles...), p.CgoFiles...) {
		read(name, false)
	}
	for _, name := range append(append([]string(nil), p.TestGoFiles...), p.XTestGoFiles...) {
		read(name, true)
	}
}

// pos writes a position as file:line relative to the module root.
func (m *module) pos(p token.Position) string {
	name := p.Filename
	if rel, err := filepath.Rel(m.root, name); err == nil {
		name = filepath.ToSlash(rel)
	}
	return fmt.Sprintf("%s:%d", name, p.Line)
}

// dirPos is the position of a package-wide violation: its directory.
func (m *module) dirPos(p *pkg) string {
	if rel, err := filepath.Rel(m.root, p.Dir); err == nil {
		return filepath.ToSlash(rel) + "/"
	}
	return p.Dir
}

// isStd reports whether importPath is in the standard library.
func (m *module) isStd(importPath string) bool {
	if lp := m.all[importPath]; lp != nil {
		return lp.Standard
	}
	first, _, _ := strings.Cut(importPath, "/")
	return !strings.Contains(first, ".")
}

// pathTo finds the shortest chain of non-test imports from p to a package
// for which stop is true, without passing through another such package,
// for every package reachable that way. Each chain starts with p's direct
// import.
func (m *module) pathTo(p *pkg, stop func(importPath string) bool) [][]string {
	prev := map[string]string{}
	queue := []string{}
	for _, imp := range p.Imports {
		if _, seen := prev[imp]; !seen {
			prev[imp] = ""
			queue = append(queue, imp)
		}
	}
	var chains [][]string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if stop(cur) {
			var chain []string
			for at := cur; at != ""; at = prev[at] {
				chain = append([]string{at}, chain...)
			}
			chains = append(chains, chain)
			continue
		}
		if lp := m.all[cur]; lp != nil {
			for _, imp := range lp.Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = cur
					queue = append(queue, imp)
				}
			}
		}
	}
	return chains
}
