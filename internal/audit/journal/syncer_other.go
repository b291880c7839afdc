//go:build !linux

package journal

import (
	"errors"
	"os"
)

func startHelper(*os.File) (syncer, error) { return nil, errors.ErrUnsupported }
