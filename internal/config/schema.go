package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
)

// EnvPrefix begins the environment variable of every setting.
const EnvPrefix = "WARDEN_"

// envReserved begins variables that belong to the test suite
// (WARDEN_TEST_POSTGRES, ...): they are neither settings nor typos.
const envReserved = EnvPrefix + "TEST_"

// envSecrets are WARDEN_* variables that are not settings: secrets some
// commands read from the environment rather than from a flag (which
// would show in the process list). Load ignores them.
var envSecrets = map[string]bool{
	EnvPrefix + "PKI_PASSPHRASE": true, // warden pki: the CA key's passphrase
}

// A Setting describes one leaf setting, for 'warden config check
// --describe' and the documentation.
type Setting struct {
	Path    string // dotted YAML path: "server.addr"
	Env     string // environment variable: "WARDEN_SERVER_ADDR"
	Type    string // "string", "bool", "int", "duration", "size", "list of CIDR"
	Default string // the default, written as the environment would write it
	Doc     string // what the setting does
}

// Describe lists every setting of [Config] in declaration order.
func Describe() []Setting {
	def := reflect.ValueOf(Default())
	var out []Setting
	for _, f := range configSchema().leaves {
		out = append(out, Setting{
			Path:    f.path,
			Env:     f.env,
			Type:    typeName(f.typ),
			Default: formatValue(def.FieldByIndex(f.index)),
			Doc:     f.doc,
		})
	}
	return out
}

// field is one node of the schema derived from Config's struct tags: a
// section (a struct of settings) or a leaf setting.
type field struct {
	key      string       // yaml key
	path     string       // dotted path from the root
	env      string       // environment variable; leaves only
	doc      string       // leaves only
	index    []int        // reflect field index from Config
	typ      reflect.Type // Go type of the value
	children []*field     // sections only, in declaration order
}

func (f *field) isSection() bool { return f.children != nil }

// child returns the child named key, or nil.
func (f *field) child(key string) *field {
	for _, c := range f.children {
		if c.key == key {
			return c
		}
	}
	return nil
}

// keys returns the children's keys.
func (f *field) keys() []string {
	keys := make([]string, len(f.children))
	for i, c := range f.children {
		keys[i] = c.key
	}
	return keys
}

type schema struct {
	root   *field
	leaves []*field
	byEnv  map[string]*field
}

// configSchema is derived once from Config's type; it is static, so a
// malformed struct tag is a programming error caught by the tests.
var configSchema = sync.OnceValue(func() *schema {
	s := &schema{root: &field{typ: reflect.TypeFor[Config]()}, byEnv: map[string]*field{}}
	s.build(s.root)
	return s
})

func (s *schema) build(sec *field) {
	sec.children = []*field{}
	for i := range sec.typ.NumField() {
		sf := sec.typ.Field(i)
		key := sf.Tag.Get("yaml")
		if key == "" || strings.ContainsAny(key, ",.") {
			panic(fmt.Sprintf("config: field %s.%s needs a plain yaml tag", sec.typ, sf.Name))
		}
		f := &field{
			key:   key,
			path:  strings.TrimPrefix(sec.path+"."+key, "."),
			index: append(append([]int(nil), sec.index...), i),
			typ:   sf.Type,
		}
		sec.children = append(sec.children, f)
		if isLeafType(f.typ) {
			f.env = EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.path, ".", "_"))
			f.doc = sf.Tag.Get("doc")
			if f.doc == "" {
				panic(fmt.Sprintf("config: setting %s needs a doc tag", f.path))
			}
			if other, dup := s.byEnv[f.env]; dup {
				panic(fmt.Sprintf("config: settings %s and %s share %s", other.path, f.path, f.env))
			}
			s.byEnv[f.env] = f
			s.leaves = append(s.leaves, f)
			continue
		}
		if f.typ.Kind() != reflect.Struct {
			panic(fmt.Sprintf("config: setting %s has unsupported type %s", f.path, f.typ))
		}
		s.build(f)
	}
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// isLeafType reports whether a value of type t is one setting rather than
// a section of settings.
func isLeafType(t reflect.Type) bool {
	return t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// isList reports whether t is a list setting, written as a YAML sequence.
func isList(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// typeName names t for people reading Describe's output.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == reflect.TypeFor[ByteSize]():
		return "size"
	case t.Name() == "Prefix" && t.PkgPath() == "net/netip":
		return "CIDR"
	case isList(t):
		return "list of " + typeName(t.Elem())
	}
	return t.Kind().String()
}
