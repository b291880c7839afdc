package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// stdDecode is encoding/json's reading of body, numbers as json.Number.
func stdDecode(t testing.TB, body []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return m
}

func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	bodies := []string{
		patient,
		observation,
		`{}`,
		` {"a" : [ 1 , -0 , 0.5 , 1e10 , -1.25E-7 , true , false , null , "" , [] , {} ] } `,
		"{\"resourceType\":\"Patient\",\r\n\t\"id\":\"x\"}\n",
		`{"s":"\u00e9\u4e2d\ud83d\ude00 \" \\ \/ \b \f \n \r \t \u0000"}`,
		`{"s":"é中😀 direct UTF-8"}`,
		`{"k\u00e9y":1,"key":2}`,
		`{"big":123456789012345678901234567890.123456789012345678901234567890}`,
	}
	for _, b := range bodies {
		got, err := Decode([]byte(b), Limits{})
		if err != nil {
			t.Errorf("Decode(%s): %v", b, err)
			continue
		}
		if want := stdDecode(t, []byte(b)); !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%s) = %#v, encoding/json gives %#v", b, got, want)
		}
	}
}

func TestDecodeKeepsNumberText(t *testing.T) {
	res, err := Decode([]byte(`{"v":0.10000000000000000000001,"e":1E+2}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if res["v"] != json.Number("0.10000000000000000000001") || res["e"] != json.Number("1E+2") {
		t.Errorf("numbers = %#v, %#v", res["v"], res["e"])
	}
}

func TestDecodeLimits(t *testing.T) {
	cases := []struct {
		name string
		body string
		lim  Limits
		err  error
		expr string
	}{
		{"size", `{"a":1}`, Limits{MaxBytes: 6}, ErrTooLarge, ""},
		{"size exact", `{"a":1}`, Limits{MaxBytes: 7}, nil, ""},
		{"depth", `{"a":[[1]]}`, Limits{MaxDepth: 2}, ErrTooDeep, "Resource.a[0]"},
		{"depth exact", `{"a":[[1]]}`, Limits{MaxDepth: 3}, nil, ""},
		{"array", `{"a":[1,2,3]}`, Limits{MaxArrayLen: 2}, ErrTooManyItems, "Resource.a[2]"},
		{"array exact", `{"a":[1,2]}`, Limits{MaxArrayLen: 2}, nil, ""},
		{"object", `{"resourceType":"Patient","a":{"x":1,"y":2,"z":3}}`, Limits{MaxObjectKeys: 2}, ErrTooManyItems, "Patient.a.z"},
		{"object exact", `{"a":{"x":1,"y":2}}`, Limits{MaxObjectKeys: 2}, nil, ""},
		{"default depth", strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64), Limits{}, nil, ""},
		{"default depth + 1", strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65), Limits{}, ErrTooDeep, "Resource" + strings.Repeat(".a", 64)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.body), tc.lim)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Decode = %v, want %v", err, tc.err)
			}
			var de *DecodeError
			if errors.As(err, &de) {
				if de.Expression != tc.expr {
					t.Errorf("Expression = %q, want %q", de.Expression, tc.expr)
				}
				if de.Code() != "too-costly" {
					t.Errorf("Code = %q, want too-costly", de.Code())
				}
			}
		})
	}
}

func TestDecodeSyntax(t *testing.T) {
	bad := []string{
		``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{'a':1}`, `{a:1}`,
		`{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`, `{"a":tru}`, `{"a":nul}`, `{"a":True}`,
		`{"a":+1}`, `{"a":.5}`, `{"a":1.}`, `{"a":1e}`, `{"a":1e+}`, `{"a":-}`, `{"a":0x10}`, `{"a":Infinity}`,
		`{"a":"\u12"}`, `{"a":"\u12G4"}`, `{"a":"\a"}`, `{"a":"unterminated}`, "{\"a\":\"tab\there\"}",
		"\xef\xbb\xbf{}", // a byte order mark
		`{"a":1}}`, `{} {}`, `{"a":1} x`, `null`, `1`, `"s"`, `true`, `[]`,
		`{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`, `{"a":"\ud800\u0041"}`, "{\"a\":\"\xed\xa0\x80\"}",
	}
	for _, b := range bad {
		if res, err := Decode([]byte(b), Limits{}); err == nil {
			t.Errorf("Decode(%q) = %v, want an error", b, res)
		} else if json.Valid([]byte(b)) && !errors.Is(err, ErrLoneSurrogate) && !errors.Is(err, ErrNotObject) && !errors.Is(err, ErrInvalidUTF8) {
			// Only the rules Decode adds may reject what encoding/json accepts.
			t.Errorf("Decode(%q) = %v, but it is valid JSON", b, err)
		}
	}
}
