//go:build !race

package fhirapi_test

// raceEnabled: see race_on_test.go.
const raceEnabled = false
