package searchparam

import "testing"

// BenchmarkExtract measures extraction from a typical Synthea Observation
// (a vital sign: code, category, subject, encounter, effectiveDateTime,
// issued and valueQuantity) and the Patient of the same bundle.
func BenchmarkExtract(b *testing.B) {
	reg := registry(b)
	bundle := syntheaBundle(b, "smart-on-fhir_generated-sample-data/Agustín_Fonseca_cb5696d9-a0de-4f49-94f9-433f96a28eb0.json")
	for _, typ := range []string{"Observation", "Patient"} {
		res := firstOfType(b, bundle, typ)
		b.Run(typ, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				n = len(reg.Extract(typ, res))
			}
			b.ReportMetric(float64(n), "entries")
		})
	}
}

// BenchmarkLoadR4 measures building the registry: decoding the embedded
// definitions, the type model and compiling every expression (what R4
// does once per process).
func BenchmarkLoadR4(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := loadR4(); err != nil {
			b.Fatal(err)
		}
	}
}
