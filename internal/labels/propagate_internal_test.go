package labels

import (
	"encoding/json"
	"testing"
)

// TestResourceTypeOf: the resourceType read from the decoded top level is
// the one encoding/json reads into a struct field (case-insensitive
// fallback included), and is refused where it is refused.
func TestResourceTypeOf(t *testing.T) {
	for _, doc := range []string{
		`{"resourceType":"Encounter"}`,
		`{"ResourceType":"Encounter"}`,
		`{"RESOURCETYPE":"Encounter","id":"x"}`,
		`{"re\u017fourceType":"Encounter"}`,
		`{"id":"x"}`,
		`{"resourceType":null}`,
		`{"resourceType":7}`,
		`{"resourceType":["Encounter"]}`,
		`{"resourceType":"Enc\u006funter"}`,
		`{}`,
	} {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		wantErr := json.Unmarshal([]byte(doc), &head) != nil
		var root map[string]json.RawMessage
		if err := json.Unmarshal([]byte(doc), &root); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		var got string
		err := resourceTypeOf(root, &got)
		if (err != nil) != wantErr || (!wantErr && got != head.ResourceType) {
			t.Errorf("%s: resourceTypeOf = %q, %v; encoding/json reads %q (error: %v)", doc, got, err, head.ResourceType, wantErr)
		}
	}
}
