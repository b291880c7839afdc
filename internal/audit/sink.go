package audit

import (
	"context"
)

// Sink is where the request path sends every Record. It is the contract
// between the HTTP layer and the audit trail (ARCHITECTURE: "Audit is a
// sink with a durable Append that returns when the entry is sequenced").
//
// Append MUST return only when the event is durable: the event, its nonce
// and its commitment on stable storage from which the commitment reaches
// the transparency log even after a crash (JournaledPipeline: the fsync'd
// journal, sequenced within a second). Append MUST be safe for concurrent
// use. An implementation MUST NOT send anything but
// a commitment leaf to a shared log, and MUST NOT put a Record's values in
// its error texts.
//
// The caller MUST NOT release a response that discloses data before
// Append returned without error, and MUST answer 503 when it returns an
// error (fail closed). The caller MUST NOT retry Append for the same
// request after an error: the request is refused instead.
type Sink interface {
	Append(ctx context.Context, r Record) (Receipt, error)
}

// Receipt identifies the durable entry of one event.
type Receipt struct {
	EventID string // the AuditEvent id
}

// Log is the transparency log as JournaledPipeline uses it; tlog.Log satisfies
// it. AppendBatch MUST return only once every leaf is sequenced durably,
// with their indexes in the order of leaves; on error any of the leaves
// may or may not have been sequenced.
type Log interface {
	AppendBatch(ctx context.Context, leaves [][]byte) ([]uint64, error)
}
