package model

import (
	"encoding/json"
	"fmt"
)

// ValueSet is the expansion of a value set: the codes it contains, by code
// system.
type ValueSet struct {
	URL      string
	bySystem map[string]map[string]struct{}
	codes    map[string]struct{} // every code, whatever its system
}

// Contains reports whether the value set holds code in system.
func (v *ValueSet) Contains(system, code string) bool {
	_, ok := v.bySystem[system][code]
	return ok
}

// ContainsCode reports whether the value set holds code in any of its
// systems: the check for elements of type code, whose system is implied.
func (v *ValueSet) ContainsCode(code string) bool {
	_, ok := v.codes[code]
	return ok
}

// Len is the number of codes in the value set.
func (v *ValueSet) Len() int {
	n := 0
	for _, c := range v.bySystem {
		n += len(c)
	}
	return n
}

func (v *ValueSet) add(system, code string) {
	s := v.bySystem[system]
	if s == nil {
		s = map[string]struct{}{}
		v.bySystem[system] = s
	}
	s[code] = struct{}{}
	v.codes[code] = struct{}{}
}

type conceptJSON struct {
	Code    string        `json:"code"`
	Concept []conceptJSON `json:"concept"`
}

type codeSystemJSON struct {
	URL     string        `json:"url"`
	Content string        `json:"content"`
	Concept []conceptJSON `json:"concept"`
}

type includeJSON struct {
	System   string            `json:"system"`
	Concept  []conceptJSON     `json:"concept"`
	Filter   []json.RawMessage `json:"filter"`
	ValueSet []string          `json:"valueSet"`
}

type valueSetJSON struct {
	URL     string `json:"url"`
	Compose *struct {
		Include []includeJSON `json:"include"`
		Exclude []includeJSON `json:"exclude"`
	} `json:"compose"`
	Expansion *struct {
		Contains []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"contains"`
	} `json:"expansion"`
}

// valueSetIndex expands value sets from the embedded CodeSystems and
// ValueSets.
type valueSetIndex struct {
	codeSystems map[string]*codeSystemJSON
	valueSets   map[string]*valueSetJSON
	done        map[string]*ValueSet // nil value: cannot be expanded
	busy        map[string]bool      // cycle guard
}

func newValueSetIndex(raw []byte) (*valueSetIndex, error) {
	var bundle struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				codeSystemJSON
				Compose   json.RawMessage `json:"compose"`
				Expansion json.RawMessage `json:"expansion"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		return nil, fmt.Errorf("model: value sets: %w", err)
	}
	x := &valueSetIndex{
		codeSystems: map[string]*codeSystemJSON{},
		valueSets:   map[string]*valueSetJSON{},
		done:        map[string]*ValueSet{},
		busy:        map[string]bool{},
	}
	for _, e := range bundle.Entry {
		r := e.Resource
		switch r.ResourceType {
		case "CodeSystem":
			cs := r.codeSystemJSON
			x.codeSystems[cs.URL] = &cs
		case "ValueSet":
			vs := &valueSetJSON{URL: r.URL}
			if len(r.Compose) > 0 {
				if err := json.Unmarshal(r.Compose, &vs.Compose); err != nil {
					return nil, fmt.Errorf("model: ValueSet %s: %w", r.URL, err)
				}
			}
			if len(r.Expansion) > 0 {
				if err := json.Unmarshal(r.Expansion, &vs.Expansion); err != nil {
					return nil, fmt.Errorf("model: ValueSet %s: %w", r.URL, err)
				}
			}
			x.valueSets[vs.URL] = vs
		}
	}
	return x, nil
}

// expand returns the expansion of the value set at url, or nil when it
// cannot be expanded in full from the embedded definitions: a code system
// that is absent or not complete, a filter, or an unknown value set.
func (x *valueSetIndex) expand(url string) *ValueSet {
	if vs, ok := x.done[url]; ok {
		return vs
	}
	if x.busy[url] {
		return nil
	}
	x.busy[url] = true
	vs := x.compute(url)
	delete(x.busy, url)
	x.done[url] = vs
	return vs
}

func (x *valueSetIndex) compute(url string) *ValueSet {
	def := x.valueSets[url]
	if def == nil {
		return nil
	}
	out := &ValueSet{URL: url, bySystem: map[string]map[string]struct{}{}, codes: map[string]struct{}{}}
	if def.Compose == nil {
		if def.Expansion == nil {
			return nil
		}
		for _, c := range def.Expansion.Contains {
			out.add(c.System, c.Code)
		}
		return out
	}
	if len(def.Compose.Exclude) > 0 {
		return nil
	}
	for _, inc := range def.Compose.Include {
		if len(inc.Filter) > 0 {
			return nil
		}
		if len(inc.ValueSet) > 0 {
			if inc.System != "" {
				return nil // an intersection; none of the core value sets needs one
			}
			for _, u := range inc.ValueSet {
				sub := x.expand(stripVersion(u))
				if sub == nil {
					return nil
				}
				for system, codes := range sub.bySystem {
					for code := range codes {
						out.add(system, code)
					}
				}
			}
			continue
		}
		if inc.System == "" {
			return nil
		}
		if len(inc.Concept) > 0 {
			for _, c := range inc.Concept {
				out.add(inc.System, c.Code)
			}
			continue
		}
		cs := x.codeSystems[inc.System]
		if cs == nil || cs.Content != "complete" {
			return nil
		}
		addConcepts(out, inc.System, cs.Concept)
	}
	return out
}

func addConcepts(vs *ValueSet, system string, cs []conceptJSON) {
	for _, c := range cs {
		vs.add(system, c.Code)
		addConcepts(vs, system, c.Concept)
	}
}
