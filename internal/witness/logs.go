package witness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ErrBadLogList reports an unusable list of logs.
var ErrBadLogList = errors.New("witness: bad log list")

// ParseLogList parses the list of logs a witness follows: one signed-note
// verifier key per line (c2sp.org/signed-note, "<origin>+<hash>+<base64>";
// the key name is the log's checkpoint origin), blank lines and lines
// starting with '#' ignored. A malformed key or an origin listed twice is an
// error naming the line.
func ParseLogList(data []byte) ([]note.Verifier, error) {
	var logs []note.Verifier
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := fnote.NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: not a verifier key: %v", ErrBadLogList, n, err)
		}
		if seen[v.Name()] {
			return nil, fmt.Errorf("%w: line %d: origin %q listed twice", ErrBadLogList, n, v.Name())
		}
		seen[v.Name()] = true
		logs = append(logs, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadLogList, err)
	}
	if len(logs) == 0 {
		return nil, fmt.Errorf("%w: no logs", ErrBadLogList)
	}
	return logs, nil
}
