package dpop_test

import (
	"testing"

	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/dpop/dpoptest"
)

func TestMemoryReplayCacheConformance(t *testing.T) {
	dpoptest.TestReplayCache(t, func(*testing.T) dpop.ReplayCache { return dpop.NewMemoryReplayCache(1 << 10) })
}
