package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
)

// MaxProofLines is the most consistency-proof lines a request may carry
// (c2sp.org/tlog-witness: a proof between trees below 2^63 has at most 63
// hashes).
const MaxProofLines = 63

const hashSize = 32 // SHA-256, the RFC 6962 tree hash

// Request is the body of an add-checkpoint request (c2sp.org/tlog-witness):
//
//	old <size>
//	<base64 consistency proof hash>   (zero or more lines)
//	<empty line>
//	<signed checkpoint note>
type Request struct {
	OldSize    uint64
	Proof      [][]byte
	Checkpoint []byte
}

// ParseRequest parses an add-checkpoint request body. It is strict, so an
// accepted body re-encodes byte for byte with [Request.Marshal]: the size is
// decimal without leading zeros, each proof line is the canonical padded
// standard base64 of a 32-byte hash, and a checkpoint follows. Failures wrap
// ErrMalformed. The checkpoint itself is checked by [Witness.AddCheckpoint].
func ParseRequest(body []byte) (Request, error) {
	var r Request
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return Request{}, fmt.Errorf("%w: no old size line", ErrMalformed)
	}
	digits, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok || !isCanonicalDecimal(digits) {
		return Request{}, fmt.Errorf("%w: bad old size line", ErrMalformed)
	}
	size, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return Request{}, fmt.Errorf("%w: bad old size", ErrMalformed)
	}
	r.OldSize = size
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return Request{}, fmt.Errorf("%w: no blank line before the checkpoint", ErrMalformed)
		}
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return Request{}, fmt.Errorf("%w: more than %d proof lines", ErrMalformed, MaxProofLines)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(h) != hashSize {
			return Request{}, fmt.Errorf("%w: proof line %d is not a base64 SHA-256 hash", ErrMalformed, len(r.Proof)+1)
		}
		r.Proof = append(r.Proof, h)
	}
	if len(rest) == 0 {
		return Request{}, fmt.Errorf("%w: no checkpoint", ErrMalformed)
	}
	r.Checkpoint = rest
	return r, nil
}

// Marshal encodes r as an add-checkpoint request body.
func (r Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

func isCanonicalDecimal(b []byte) bool {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
