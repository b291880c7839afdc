package validate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/model"
)

// syntheaSample is the bundle the benchmarks take their resources from.
const syntheaSample = "smart-on-fhir_generated-sample-data/Agustín_Fonseca_cb5696d9-a0de-4f49-94f9-433f96a28eb0.json"

// benchResources returns, from one Synthea bundle, the first Observation,
// the Patient and the largest ExplanationOfBenefit, as JSON.
func benchResources(b *testing.B) map[string][]byte {
	if _, err := model.R4(); err != nil { // built once, outside the timings
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(syntheaDir, syntheaSample))
	if os.IsNotExist(err) {
		b.Skip("Synthea data not present: ", err)
	}
	if err != nil {
		b.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		b.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range bundle.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil {
			b.Fatal(err)
		}
		switch rt := head.ResourceType; rt {
		case "Observation", "Patient":
			if out[rt] == nil {
				out[rt] = e.Resource
			}
		case "ExplanationOfBenefit":
			if len(e.Resource) > len(out[rt]) {
				out[rt] = e.Resource
			}
		}
	}
	return out
}

// BenchmarkValidate measures Decode followed by Validate on typical
// Synthea resources; the "validate" variants measure Validate alone.
func BenchmarkValidate(b *testing.B) {
	res := benchResources(b)
	for _, rt := range []string{"Observation", "Patient", "ExplanationOfBenefit"} {
		body := res[rt]
		if body == nil {
			b.Fatalf("no %s in %s", rt, syntheaSample)
		}
		b.Run(rt, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := Decode(body, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				if is := Validate(r); len(is) > 0 {
					b.Fatal(is)
				}
			}
		})
		b.Run(rt+"/validate", func(b *testing.B) {
			r, err := Decode(body, Limits{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if is := Validate(r); len(is) > 0 {
					b.Fatal(is)
				}
			}
		})
		b.Run(rt+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(body, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
