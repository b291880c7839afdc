package rawjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestTopMember(t *testing.T) {
	for _, c := range []struct {
		raw, want string
		ok        bool
	}{
		{`{"resourceType":"Observation","meta":{"security":[{"code":"HIV"}]},"status":"final"}`, `{"security":[{"code":"HIV"}]}`, true},
		{` { "a" : "\"meta\":{\"x\":1}" , "meta" : [1, {"b":"]"}] } `, `[1, {"b":"]"}]`, true},
		{`{"a":{"meta":1},"b":[{"meta":2}]}`, ``, true}, // nested members are not top-level
		{`{"Meta":true}`, `true`, true},    // case-insensitive, as encoding/json
		{`{"meta":1,"meta":2}`, ``, false}, // repeated: the full decoder decides
		{`{"meta":1,"META":2}`, ``, false},
		{`{"m\u0065ta":{"security":[]}}`, ``, false}, // an escaped name: not compared by the scan
		{`{"meta":"x"`, ``, false},
		{`["meta"]`, ``, false},
		{`{"meta" 1}`, ``, false},
		{``, ``, false},
	} {
		got, ok := TopMember([]byte(c.raw), "meta")
		if ok != c.ok || string(got) != c.want {
			t.Errorf("TopMember(%s) = %q, %v; want %q, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}

// FuzzTopMember: whenever the scan answers and encoding/json reads the
// document, both find the same member (or both none).
func FuzzTopMember(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"o1","meta":{"versionId":"1","security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]},"status":"final"}`))
	f.Add([]byte(`{"a":"\"meta\":{","meta":{"profile":["p"]},"b":[{"meta":1}]}`))
	f.Add([]byte(`{"MeTa":null,"x":-1.5e3}`))
	f.Add([]byte(`{"m\u0065ta":{}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := TopMember(raw, "meta")
		if !ok {
			return
		}
		var doc struct {
			Meta json.RawMessage `json:"meta"`
		}
		if json.Unmarshal(raw, &doc) != nil {
			return
		}
		if doc.Meta == nil && got != nil && !bytes.Equal(got, []byte("null")) {
			t.Fatalf("%q: scan found %q, encoding/json no meta", raw, got)
		}
		if doc.Meta != nil && !bytes.Equal(got, doc.Meta) {
			t.Fatalf("%q: scan found %q, encoding/json %q", raw, got, doc.Meta)
		}
	})
}
