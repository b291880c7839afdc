package consent

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// knownMembers are the member names Parse reads, by lower case.
// encoding/json matches names case-insensitively and keeps the last of
// duplicates; checkMembers makes both impossible, so that Parse reads
// exactly the members a case-sensitive FHIR reader sees.
var knownMembers = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"resourceType", "id", "implicitRules", "modifierExtension", "extension", "status", "scope",
		"patient", "policyRule", "provision", "type", "period", "actor", "action", "securityLabel",
		"purpose", "class", "code", "dataPeriod", "data", "role", "reference", "identifier", "system",
		"value", "coding", "start", "end", "url", "valueString", "meaning",
	} {
		m[strings.ToLower(n)] = n
	}
	return m
}()

// checkMembers refuses JSON in which an object has two members of the same
// name, or a member whose name differs only in case from one Parse reads
// ("Patient", "SYSTEM"). R4 JSON names are case-sensitive and unique
// (json.html); a reader that took another of two duplicates than the
// store's validator could enforce a different Consent than the one stored.
func checkMembers(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		object bool
		seen   map[string]bool
		key    bool // the next token in this object is a member name
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return invalid("Consent", "not a valid JSON Consent")
		}
		top := len(stack) - 1
		if name, isName := tok.(string); isName && top >= 0 && stack[top].object && stack[top].key {
			if stack[top].seen[name] {
				return invalid("Consent", "a member appears twice in one object")
			}
			if exact, ok := knownMembers[strings.ToLower(name)]; ok && exact != name {
				return invalid("Consent", "a member name is in the wrong case")
			}
			stack[top].seen[name] = true
			stack[top].key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, seen: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			top--
		}
		if top >= 0 && stack[top].object {
			stack[top].key = true // a value ended: a name or '}' comes next
		}
	}
}
