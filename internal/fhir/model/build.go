package model

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/spec"
)

// Extension URLs the StructureDefinitions use on ElementDefinition.type.
const (
	extFHIRType = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	extRegex    = "http://hl7.org/fhir/StructureDefinition/regex"
	sdPrefix    = "http://hl7.org/fhir/StructureDefinition/"
	systemType  = "http://hl7.org/fhirpath/System."
)

// The StructureDefinition fields the model reads.
type sdJSON struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	URL          string          `json:"url"`
	Kind         string          `json:"kind"`
	Abstract     bool            `json:"abstract"`
	Derivation   string          `json:"derivation"`
	Base         string          `json:"baseDefinition"`
	Type         json.RawMessage `json:"type"` // a string here, a boolean in OperationDefinition
	Snapshot     struct {
		Element []elementJSON `json:"element"`
	} `json:"snapshot"`
}

type elementJSON struct {
	Path string `json:"path"`
	Min  int    `json:"min"`
	Max  string `json:"max"`
	Base struct {
		Max string `json:"max"`
	} `json:"base"`
	Type             []typeRefJSON `json:"type"`
	ContentReference string        `json:"contentReference"`
	Binding          *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
	IsSummary  bool `json:"isSummary"`
	IsModifier bool `json:"isModifier"`
	MaxLength  int  `json:"maxLength"`
}

type typeRefJSON struct {
	Code          string   `json:"code"`
	Profile       []string `json:"profile"`
	TargetProfile []string `json:"targetProfile"`
	Extension     []struct {
		URL         string `json:"url"`
		ValueURL    string `json:"valueUrl"`
		ValueString string `json:"valueString"`
	} `json:"extension"`
}

func (t typeRefJSON) ext(url string) string {
	for _, e := range t.Extension {
		if e.URL == url {
			return e.ValueURL + e.ValueString
		}
	}
	return ""
}

// profiledTypes are the constraint profiles that base definitions use as
// element types (type.profile); they are modelled as types of their own so
// that their restrictions (no comparator in a SimpleQuantity) apply.
var profiledTypes = map[string]bool{"SimpleQuantity": true, "MoneyQuantity": true}

// jsonKinds is the JSON representation of each primitive (R4 §2.6.2):
// numbers and booleans are JSON numbers and booleans, the rest strings.
var jsonKinds = map[string]JSONKind{
	"boolean": JSONBoolean, "integer": JSONNumber, "positiveInt": JSONNumber,
	"unsignedInt": JSONNumber, "decimal": JSONNumber,
}

// integerRanges are the value ranges of the integer types (R4 §2.24.0.1:
// integer is a signed 32-bit value).
var integerRanges = map[string][2]int64{
	"integer":     {math.MinInt32, math.MaxInt32},
	"positiveInt": {1, math.MaxInt32},
	"unsignedInt": {0, math.MaxInt32},
}

type builder struct {
	m      *Model
	sds    map[string]*sdJSON // by type name
	vs     *valueSetIndex
	failed map[string]bool // required-binding value sets that cannot be expanded
	linkFn []func() error  // resolutions that need every type to exist
}

func buildR4() (*Model, error) {
	b := &builder{
		m:      &Model{types: map[string]*Type{}, valueSets: map[string]*ValueSet{}},
		sds:    map[string]*sdJSON{},
		failed: map[string]bool{},
	}
	for _, name := range []string{spec.ProfilesTypes, spec.ProfilesResources} {
		if err := b.load(name); err != nil {
			return nil, err
		}
	}
	raw, err := spec.R4(spec.ValueSets)
	if err != nil {
		return nil, err
	}
	if b.vs, err = newValueSetIndex(raw); err != nil {
		return nil, err
	}
	if err := b.build(); err != nil {
		return nil, err
	}
	return b.m, nil
}

// load reads the StructureDefinitions of one embedded Bundle.
func (b *builder) load(file string) error {
	raw, err := spec.R4(file)
	if err != nil {
		return err
	}
	var bundle struct {
		Entry []struct {
			Resource sdJSON `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		return fmt.Errorf("model: %s: %w", file, err)
	}
	for i := range bundle.Entry {
		sd := &bundle.Entry[i].Resource
		if sd.ResourceType != "StructureDefinition" || sd.Kind == "logical" {
			continue
		}
		if sd.Derivation == "constraint" && !profiledTypes[sd.ID] {
			continue
		}
		name := sd.ID
		if sd.Derivation != "constraint" {
			if err := json.Unmarshal(sd.Type, &name); err != nil {
				return fmt.Errorf("model: StructureDefinition %s: type: %w", sd.ID, err)
			}
		}
		if b.sds[name] != nil {
			return fmt.Errorf("model: StructureDefinition for %s defined twice", name)
		}
		b.sds[name] = sd
	}
	return nil
}

func (b *builder) build() error {
	names := make([]string, 0, len(b.sds))
	for name, sd := range b.sds {
		names = append(names, name)
		t := &Type{Name: name, Abstract: sd.Abstract, byName: map[string]*Element{}}
		switch sd.Kind {
		case "primitive-type":
			t.Kind = PrimitiveKind
		case "complex-type":
			t.Kind = ComplexKind
		case "resource":
			t.Kind = ResourceKind
			if !sd.Abstract {
				b.m.resources = append(b.m.resources, name)
			}
		default:
			return fmt.Errorf("model: StructureDefinition %s: unexpected kind %q", name, sd.Kind)
		}
		b.m.types[name] = t
	}
	sort.Strings(b.m.resources)
	sort.Strings(names)
	for _, name := range names {
		t, sd := b.m.types[name], b.sds[name]
		var err error
		if t.Kind == PrimitiveKind {
			err = b.primitive(t, sd)
		} else {
			err = b.structure(t, sd)
		}
		if err != nil {
			return err
		}
	}
	for _, fn := range b.linkFn {
		if err := fn(); err != nil {
			return err
		}
	}
	for url := range b.failed {
		b.m.unexpanded = append(b.m.unexpanded, url)
	}
	sort.Strings(b.m.unexpanded)
	return nil
}

// primitive reads a primitive type's JSON kind, regex, length and range.
func (b *builder) primitive(t *Type, sd *sdJSON) error {
	t.JSON = jsonKinds[t.Name]
	if t.JSON == 0 {
		t.JSON = JSONString
	}
	if r, ok := integerRanges[t.Name]; ok {
		t.MinValue, t.MaxValue = r[0], r[1]
	}
	for s := sd; s != nil; s = b.sds[strings.TrimPrefix(s.Base, sdPrefix)] {
		for _, el := range s.Snapshot.Element {
			if el.Path != s.ID+".value" {
				continue
			}
			if t.MaxLength == 0 {
				t.MaxLength = el.MaxLength
			}
			if s != sd || len(el.Type) != 1 {
				continue
			}
			if re := el.Type[0].ext(extRegex); re != "" {
				p, err := regexp.Compile(`^(?:` + re + `)$`)
				if err != nil {
					return fmt.Errorf("model: %s: regex: %w", t.Name, err)
				}
				t.Pattern = p
				t.match = fastMatcher(re)
			}
		}
	}
	if t.Pattern == nil && t.Name != "xhtml" {
		return fmt.Errorf("model: primitive type %s has no regex", t.Name)
	}
	return nil
}

// structure builds the elements of a complex type or resource, and of the
// backbone elements defined inline in it.
func (b *builder) structure(t *Type, sd *sdJSON) error {
	els := sd.Snapshot.Element
	if len(els) == 0 || els[0].Path != t.Name && !profiledTypes[t.Name] {
		return fmt.Errorf("model: StructureDefinition %s has no snapshot", t.Name)
	}
	root := els[0].Path // "Quantity" for SimpleQuantity
	// Paths that have children become types of their own.
	owners := map[string]*Type{root: t}
	for _, el := range els[1:] {
		parent := el.Path[:strings.LastIndexByte(el.Path, '.')]
		if owners[parent] == nil {
			owners[parent] = &Type{Name: t.Name + strings.TrimPrefix(parent, root), Kind: BackboneKind, byName: map[string]*Element{}}
		}
	}
	for _, el := range els[1:] {
		i := strings.LastIndexByte(el.Path, '.')
		owner, local := owners[el.Path[:i]], el.Path[i+1:]
		if owner == nil {
			return fmt.Errorf("model: %s: element %s has no parent", t.Name, el.Path)
		}
		if err := b.element(t, owner, owners, root, el, local); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) element(top, owner *Type, owners map[string]*Type, root string, el elementJSON, local string) error {
	max, err := parseMax(el.Max)
	if err != nil {
		return fmt.Errorf("model: %s: %w", el.Path, err)
	}
	baseMax := max
	if el.Base.Max != "" {
		if baseMax, err = parseMax(el.Base.Max); err != nil {
			return fmt.Errorf("model: %s: base: %w", el.Path, err)
		}
	}
	proto := Element{
		Path:     el.Path,
		Min:      el.Min,
		Max:      max,
		Array:    baseMax != 1 && baseMax != 0,
		Summary:  el.IsSummary,
		Modifier: el.IsModifier,
	}
	if el.Binding != nil && el.Binding.Strength == "required" && el.Binding.ValueSet != "" {
		proto.BindingURL = stripVersion(el.Binding.ValueSet)
		proto.Binding = b.valueSet(proto.BindingURL)
	}
	add := func(e *Element) error {
		if !e.attribute {
			e.extName = "_" + e.Name
		}
		if owner.byName[e.Name] != nil {
			return fmt.Errorf("model: %s: two elements called %s", owner.Name, e.Name)
		}
		owner.byName[e.Name] = e
		owner.Elements = append(owner.Elements, e)
		if e.Min > 0 && e.Choice == nil {
			owner.Required = append(owner.Required, e)
		}
		return nil
	}

	if el.ContentReference != "" {
		// "#Questionnaire.item": the same content as another element.
		ref := strings.TrimPrefix(el.ContentReference, "#")
		e := proto
		e.Name = local
		ep := &e
		b.linkFn = append(b.linkFn, func() error {
			target := owners[ref]
			if target == nil {
				return fmt.Errorf("model: %s: contentReference %s not found", el.Path, el.ContentReference)
			}
			ep.Type = target
			return nil
		})
		return add(ep)
	}

	if child := owners[el.Path]; child != nil {
		// A backbone element (or an inline Element in a data type).
		e := proto
		e.Name = local
		e.Type = child
		return add(&e)
	}

	if name, ok := strings.CutSuffix(local, "[x]"); ok {
		c := &Choice{Path: el.Path, Name: name, Min: el.Min}
		owner.Choices = append(owner.Choices, c)
		for _, tr := range el.Type {
			e := proto
			e.Name = name + strings.ToUpper(tr.Code[:1]) + tr.Code[1:]
			e.Choice = c
			if err := b.typeRef(top, &e, tr); err != nil {
				return err
			}
			c.Elements = append(c.Elements, &e)
			if err := add(&e); err != nil {
				return err
			}
		}
		return nil
	}

	if len(el.Type) != 1 {
		return fmt.Errorf("model: %s: %d types on a non-choice element", el.Path, len(el.Type))
	}
	e := proto
	e.Name = local
	if err := b.typeRef(top, &e, el.Type[0]); err != nil {
		return err
	}
	return add(&e)
}

// typeRef sets e's type (linked once every type exists) and reference
// targets from one ElementDefinition.type.
func (b *builder) typeRef(top *Type, e *Element, tr typeRefJSON) error {
	name := tr.Code
	if strings.HasPrefix(name, systemType) {
		// The value of an id, extension url or primitive: the FHIR type
		// is in an extension.
		name = tr.ext(extFHIRType)
		if name == "" {
			return fmt.Errorf("model: %s: %s without %s", e.Path, tr.Code, extFHIRType)
		}
		if top.Kind == ResourceKind && e.Path == top.Name+".id" {
			// Resource.id: the snapshot says string, the R4 specification
			// (§2.6.2 "Resource.id", §2.24.0.1 id) says id.
			name = "id"
		} else {
			// Element.id and Extension.url: XML attributes, which take
			// no extensions.
			e.attribute = true
		}
	}
	for _, p := range tr.Profile {
		if n := strings.TrimPrefix(p, sdPrefix); profiledTypes[n] {
			name = n
		}
	}
	if name == "Reference" {
		for _, p := range tr.TargetProfile {
			target, ok := strings.CutPrefix(p, sdPrefix)
			if !ok {
				return fmt.Errorf("model: %s: target profile %s", e.Path, p)
			}
			if target == "Resource" {
				e.Targets = nil
				break
			}
			e.Targets = append(e.Targets, target)
		}
	}
	b.linkFn = append(b.linkFn, func() error {
		e.Type = b.m.types[name]
		if e.Type == nil {
			return fmt.Errorf("model: %s: unknown type %s", e.Path, name)
		}
		return nil
	})
	return nil
}

func (b *builder) valueSet(url string) *ValueSet {
	if vs, ok := b.m.valueSets[url]; ok {
		return vs
	}
	vs := b.vs.expand(url)
	if vs == nil {
		b.failed[url] = true
		return nil
	}
	b.m.valueSets[url] = vs
	return vs
}

func parseMax(s string) (int, error) {
	if s == "*" {
		return Unbounded, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad max cardinality %q", s)
	}
	return n, nil
}

func stripVersion(url string) string {
	if i := strings.IndexByte(url, '|'); i >= 0 {
		return url[:i]
	}
	return url
}
