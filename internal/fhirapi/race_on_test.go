//go:build race

package fhirapi_test

// raceEnabled: the race detector slows the store several times; the
// longest data-driven tests take a smaller sample under it.
const raceEnabled = true
