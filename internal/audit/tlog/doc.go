// Package tlog owns Warden's audit transparency log: an append-only Merkle
// tree of audit leaves kept by Tessera (github.com/transparency-dev/tessera)
// on its POSIX driver, with C2SP signed checkpoints (c2sp.org/tlog-checkpoint)
// and RFC 6962 / RFC 9162 inclusion and consistency proofs. It also holds the
// offline verifier auditors run against a checkpoint and a copy of the leaves.
//
// The package sequences opaque leaves. It never sees an AuditEvent, a nonce
// or any PHI: callers (package audit) hand it hiding commitments, and it must
// never log or return leaf contents in errors. Only http.go imports net/http,
// for the optional read-only tiles handler ([Log.Handler]).
//
// # Durability point
//
// [Log.Append] (and [Log.AppendBatch], for each of its leaves) returns an
// index only once Tessera's index future has
// resolved. On the POSIX driver that happens after the batch holding the leaf
// has been written to its entry bundle, integrated into the tile hashes and
// the new tree state stored, every file written with O_SYNC and renamed into
// place with the directory fsync'd. An entry whose Append returned survives
// a crash (kill -9, power loss on a disk that honours fsync). An entry still
// in the in-memory batch when the process dies is lost and its caller never
// got an index, so callers must treat an error (or a cancelled context) as
// "unknown" and retry; leaves therefore carry a per-event random nonce and
// are unique, so a retried leaf that did land once is harmless.
//
// Publishing a signed checkpoint is a separate background step (every
// [Options.CheckpointInterval]); it is never on the request path. A leaf is
// durable when Append returns and is committed to by a signed checkpoint at
// most one checkpoint interval later. [Log.Close] waits for a checkpoint
// that covers every index it handed out.
//
// # Why antispam is off
//
// Tessera's antispam layer deduplicates identical leaves. Audit leaves are
// commitments over a fresh 256-bit nonce, so duplicates never happen in
// honest use, and deduplication would hide a replayed leaf behind an old
// index instead of recording it. Measured on this machine (see
// design/notes/tessera.md) it also cost 35–50% of
// throughput and added pushback errors. Without it, a leaf submitted twice
// (a retry after a crash) simply occupies two indices.
//
// # What a checkpoint commits to
//
// A checkpoint is a signed note whose body is three lines: the origin (the
// log's name, equal to the signing key's name), the tree size N in decimal,
// and the base64 RFC 6962 root hash of the Merkle tree over leaves 0..N-1,
// where each leaf hash is SHA-256(0x00 || leaf) and each interior node
// SHA-256(0x01 || left || right) (RFC 6962 §2.1). It therefore commits to
// every leaf's exact bytes and position: editing, dropping, inserting or
// reordering any of them changes the root. Two checkpoints from the same key
// that are not consistent (RFC 6962 §2.1.2) — or of the same size with
// different roots — are proof the log forked.
//
// # Verifying a log offline
//
// An auditor needs the log's verifier key (the vkey returned by [NewKey]), a
// checkpoint, and the leaves (from the entry bundles under
// Options.Dir/tile/entries, read with [Log.Leaves] or [Log.Leaf], or recomputed from the
// stored events). [Verify] checks the checkpoint's signature and origin,
// rehashes leaves 0..N-1 and compares the root, naming the first bad index
// and the kind of fault when it can; [VerifyAgainst] localises a mismatch by
// comparing with a second copy of the leaves that does match the checkpoint.
// [VerifyConsistency] checks a newer checkpoint extends an older one (and
// rejects rewinds and same-size forks); [VerifyInclusion] checks one leaf.
// No network and no trust in the server is needed beyond the verifier key.
package tlog
