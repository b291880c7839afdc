package dpop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// StoreReplayCache is a ReplayCache over the shared store, so that
// replicas behind one load balancer refuse a proof any of them has seen:
// one conditional insert per proof. Records outlive their proof by an hour
// (the store removes them after); which of them are still replays is
// decided against the proof's own expiry, kept in the record.
type StoreReplayCache struct {
	records store.Records
}

// NewStoreReplayCache returns the cache over records.
func NewStoreReplayCache(records store.Records) *StoreReplayCache {
	return &StoreReplayCache{records: records}
}

// recordKindDPoP is the store record kind of used proofs.
const recordKindDPoP = "dpop-proof"

// Remember implements ReplayCache.
func (c *StoreReplayCache) Remember(ctx context.Context, id [sha256.Size]byte, expires, now time.Time) error {
	rec := store.Record{Kind: recordKindDPoP, Key: hex.EncodeToString(id[:]),
		Value: strconv.AppendInt(nil, expires.UnixNano(), 10), Expires: expires.Add(time.Hour)}
	for range 2 {
		err := c.records.InsertRecord(ctx, rec)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: %w", ErrReplayCheck, err)
		}
		old, err := c.records.GetRecord(ctx, recordKindDPoP, rec.Key)
		if errors.Is(err, store.ErrNotFound) {
			continue // it expired between the two calls: insert again
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrReplayCheck, err)
		}
		until, err := strconv.ParseInt(string(old.Value), 10, 64)
		if err != nil || now.UnixNano() < until {
			return ErrReplayed
		}
		// The earlier use expired: this proof may take the id over, once.
		switch err := c.records.SwapRecord(ctx, rec, old.Value); {
		case err == nil:
			return nil
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			return ErrReplayed // another request took it over first
		default:
			return fmt.Errorf("%w: %w", ErrReplayCheck, err)
		}
	}
	return ErrReplayed
}
