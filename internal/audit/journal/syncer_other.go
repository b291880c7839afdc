//go:build !linux

package journal

import (
	"errors"
	"os"
)

func startHelper(*os.File) (syncer, error) { return nil, errors.ErrUnsupported }

// FsyncHelperMain is the Linux one's counterpart: there is no helper
// here, and journals fsync in process.
func FsyncHelperMain() (code int, helper bool) { return 0, false }
