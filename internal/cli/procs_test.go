package cli

import "testing"

func TestServeProcs(t *testing.T) {
	for _, tt := range []struct {
		name             string
		configured, cpus int
		envSet           bool
		want             int
	}{
		{"automatic: twice the CPUs", 0, 2, false, 4},
		{"automatic on one CPU", 0, 1, false, 2},
		{"automatic with no CPU count", 0, 0, false, 2},
		{"configured wins over automatic", 3, 2, false, 3},
		{"configured one", 1, 8, false, 1},
		{"GOMAXPROCS in the environment wins over automatic", 0, 2, true, 0},
		{"GOMAXPROCS in the environment wins over configured", 6, 2, true, 0},
	} {
		if got := serveProcs(tt.configured, tt.cpus, tt.envSet); got != tt.want {
			t.Errorf("%s: serveProcs(%d, %d, %v) = %d, want %d", tt.name, tt.configured, tt.cpus, tt.envSet, got, tt.want)
		}
	}
}
