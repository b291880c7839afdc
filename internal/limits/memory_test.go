package limits_test

import (
	"testing"

	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/limits/limitstest"
)

func TestMemoryStoreConformance(t *testing.T) {
	limitstest.Run(t, func(*testing.T) limits.Store { return limits.NewMemoryStore() })
}
