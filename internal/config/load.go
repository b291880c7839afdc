package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds the configuration file; a real one is a few KiB.
const maxFileSize = 1 << 20

// envSource is the Source of a SettingError about a variable.
const envSource = "environment"

// Load returns the defaults, overridden by the YAML file at path (skipped
// when path is ""), overridden by the WARDEN_* entries of env ("NAME=value",
// as os.Environ returns; when a name repeats, the last entry wins).
//
// Load reports every unknown key, unknown WARDEN_* variable and unparsable
// value it finds, each as a *SettingError, joined with errors.Join. It does
// not judge whether the values make sense together: call [Config.Validate].
func Load(path string, env []string) (Config, error) {
	var data []byte
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading configuration: %w", err)
		}
		data, err = io.ReadAll(io.LimitReader(f, maxFileSize+1))
		f.Close()
		if err != nil {
			return Config{}, fmt.Errorf("reading configuration: %w", err)
		}
		if len(data) > maxFileSize {
			return Config{}, fmt.Errorf("%s: larger than %d bytes: not a configuration file", path, maxFileSize)
		}
	}
	return load(path, data, env)
}

// load is Load after the file has been read.
func load(name string, data []byte, env []string) (Config, error) {
	cfg := Default()
	fileErr := decodeFile(name, data, &cfg)
	envErr := applyEnv(&cfg, env)
	if err := errors.Join(fileErr, envErr); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeFile applies the YAML document data to cfg. Rather than letting
// the YAML decoder map values onto Go types, it walks the document's node
// tree against the schema, which lets it reject what a lenient decoder
// would let through (unknown and repeated keys, null values, lists where a
// single value belongs) and name the setting and line of each problem, and
// parse every value exactly as the environment's are parsed.
func decodeFile(name string, data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: nothing to override
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return &SettingError{Source: name, Line: extra.Line, Err: fmt.Errorf("%w: a second YAML document; the configuration is one document", ErrInvalid)}
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		root = doc.Content[0]
	}
	d := &fileDecoder{name: name, cfg: reflect.ValueOf(cfg).Elem()}
	d.section(root, configSchema().root)
	return errors.Join(d.errs...)
}

type fileDecoder struct {
	name string
	cfg  reflect.Value
	errs []error
}

func (d *fileDecoder) fail(n *yaml.Node, setting string, err error) {
	d.errs = append(d.errs, &SettingError{Source: d.name, Line: n.Line, Setting: setting, Err: err})
}

func (d *fileDecoder) invalid(n *yaml.Node, setting, format string, args ...any) {
	d.fail(n, setting, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...)))
}

// section applies the mapping n to the settings of sec.
func (d *fileDecoder) section(n *yaml.Node, sec *field) {
	n = deref(n)
	if isNull(n) {
		return // "server:" with everything below commented out
	}
	if n.Kind != yaml.MappingNode {
		d.invalid(n, sec.path, "want a mapping of settings, not %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.invalid(k, sec.path, "a key must be a plain name, not %s", kindName(k))
			continue
		}
		path := strings.TrimPrefix(sec.path+"."+k.Value, ".")
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.fail(k, sec.path, fmt.Errorf("%w: YAML merge keys (<<) are not supported; write each setting", ErrUnknown))
			continue
		}
		f := sec.child(k.Value)
		if f == nil {
			d.fail(k, path, unknownKey(k.Value, sec))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.invalid(k, path, "set twice (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		if f.isSection() {
			d.section(v, f)
		} else {
			d.leaf(v, f)
		}
	}
}

// leaf applies the value n to the setting f.
func (d *fileDecoder) leaf(n *yaml.Node, f *field) {
	n = deref(n)
	v := d.cfg.FieldByIndex(f.index)
	if !isList(f.typ) {
		switch {
		case isNull(n):
			d.invalid(n, f.path, "no value (write \"\" for an empty string)")
		case n.Kind != yaml.ScalarNode:
			d.invalid(n, f.path, "want a single value, not %s", kindName(n))
		default:
			if err := parseText(v, n.Value); err != nil {
				d.invalid(n, f.path, "%v", err)
			}
		}
		return
	}
	if isNull(n) {
		d.invalid(n, f.path, "no value (write [] for an empty list)")
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.invalid(n, f.path, "want a list, not %s", kindName(n))
		return
	}
	list := reflect.MakeSlice(f.typ, len(n.Content), len(n.Content))
	ok := true
	for i, item := range n.Content {
		item = deref(item)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			d.invalid(item, f.path, "list item %d: want a single value, not %s", i+1, kindName(item))
			ok = false
			continue
		}
		if err := parseText(list.Index(i), item.Value); err != nil {
			d.invalid(item, f.path, "list item %d: %v", i+1, err)
			ok = false
		}
	}
	if ok {
		v.Set(normalizeList(list))
	}
}

func unknownKey(key string, sec *field) error {
	if s := suggest(key, sec.keys()); s != "" {
		return fmt.Errorf("%w (did you mean %s?)", ErrUnknown, strings.TrimPrefix(sec.path+"."+s, "."))
	}
	if sec.path == "" {
		return fmt.Errorf("%w (top-level keys: %s)", ErrUnknown, strings.Join(sec.keys(), ", "))
	}
	return fmt.Errorf("%w (keys of %s: %s)", ErrUnknown, sec.path, strings.Join(sec.keys(), ", "))
}

// deref follows an alias (*name) to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a single value"
	}
	return "an alias"
}

// applyEnv applies the WARDEN_* entries of env to cfg.
func applyEnv(cfg *Config, env []string) error {
	s := configSchema()
	values := map[string]string{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || strings.HasPrefix(name, envReserved) || envSecrets[name] {
			continue
		}
		values[name] = value
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	v := reflect.ValueOf(cfg).Elem()
	var errs []error
	for _, name := range names {
		f := s.byEnv[name]
		if f == nil {
			errs = append(errs, &SettingError{Source: envSource, Setting: name, Err: unknownEnv(name)})
			continue
		}
		var err error
		if isList(f.typ) {
			err = parseList(v.FieldByIndex(f.index), values[name])
		} else {
			err = parseText(v.FieldByIndex(f.index), values[name])
		}
		if err != nil {
			errs = append(errs, &SettingError{Source: envSource, Setting: name, Err: fmt.Errorf("%w: %v", ErrInvalid, err)})
		}
	}
	return errors.Join(errs...)
}

func unknownEnv(name string) error {
	s := configSchema()
	names := make([]string, 0, len(s.leaves))
	for _, f := range s.leaves {
		names = append(names, f.env)
	}
	if sug := suggest(name, names); sug != "" {
		return fmt.Errorf("%w (did you mean %s?)", ErrUnknown, sug)
	}
	return fmt.Errorf("%w ('warden config check --describe' lists every variable; %s* is reserved for tests)", ErrUnknown, envReserved)
}
