package audit

import (
	"testing"
)

// BenchmarkBuildCommit measures the CPU cost of one event before I/O:
// Build, id, Canonical, Commit. Target: well under 20 µs.
func BenchmarkBuildCommit(b *testing.B) {
	for _, name := range []string{"read", "search many patients"} {
		r := records()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev, err := Build(r, testBase)
				if err != nil {
					b.Fatal(err)
				}
				ev["id"] = testEventID()
				canon, err := Canonical(ev)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Commit(canon); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEventStages splits BenchmarkBuildCommit/read by stage, to show
// where the time goes.
func BenchmarkEventStages(b *testing.B) {
	r := records()["read"]
	ev, err := Build(r, testBase)
	if err != nil {
		b.Fatal(err)
	}
	ev["id"] = testEventID()
	canon, err := Canonical(ev)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Build(r, testBase)
		}
	})
	b.Run("Canonical", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			Canonical(ev)
		}
	})
	b.Run("AppendCanonical", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			AppendCanonical(buf[:0], r, testBase, "0123456789abcdef0123456789abcdef")
		}
	})
	b.Run("Commit", func(b *testing.B) {
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			Commit(canon)
		}
	})
}
