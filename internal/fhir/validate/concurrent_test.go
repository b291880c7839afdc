package validate

import (
	"sync"
	"testing"
)

// TestConcurrentValidate shares the model between goroutines, as the
// server does; run it with -race.
func TestConcurrentValidate(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				res, err := Decode([]byte(observation), Limits{})
				if err != nil {
					t.Error(err)
					return
				}
				if issues := Validate(res); len(issues) > 0 {
					t.Error(issues)
				}
			}
		})
	}
	wg.Wait()
}
