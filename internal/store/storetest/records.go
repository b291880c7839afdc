package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// testRecords checks the store.Records contract.
func testRecords(t *testing.T, s store.Store) {
	rs, ok := s.(store.Records)
	if !ok {
		t.Fatalf("%T does not implement store.Records", s)
	}
	ctx := context.Background()
	past := time.Now().Add(-time.Second)
	future := time.Now().Add(time.Hour)

	t.Run("PutGet", func(t *testing.T) {
		r := store.Record{Kind: "client", Key: "a", Group: "g", Value: []byte{0, 1, 2, 0xff}, Expires: future}
		if err := rs.PutRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := rs.GetRecord(ctx, "client", "a")
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != "client" || got.Key != "a" || got.Group != "g" || !bytes.Equal(got.Value, r.Value) ||
			got.Expires.UnixMicro() != future.UnixMicro() {
			t.Errorf("got %+v, want %+v", got, r)
		}
		// Replace, without expiry.
		if err := rs.PutRecord(ctx, store.Record{Kind: "client", Key: "a", Value: []byte("v2")}); err != nil {
			t.Fatal(err)
		}
		got, err = rs.GetRecord(ctx, "client", "a")
		if err != nil || string(got.Value) != "v2" || got.Group != "" || !got.Expires.IsZero() {
			t.Errorf("after replace: %+v, %v", got, err)
		}
		// Same key in another kind is another record.
		if _, err := rs.GetRecord(ctx, "user", "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("other kind: err = %v, want ErrNotFound", err)
		}
		// Empty values round-trip as empty, not as an error.
		if err := rs.PutRecord(ctx, store.Record{Kind: "client", Key: "empty"}); err != nil {
			t.Fatal(err)
		}
		if got, err := rs.GetRecord(ctx, "client", "empty"); err != nil || len(got.Value) != 0 {
			t.Errorf("empty value: %+v, %v", got, err)
		}
		if err := rs.PutRecord(ctx, store.Record{Kind: "", Key: "x"}); err == nil {
			t.Error("a record without kind was accepted")
		}
	})

	t.Run("Expired", func(t *testing.T) {
		if err := rs.PutRecord(ctx, store.Record{Kind: "code", Key: "old", Group: "g", Value: []byte("x"), Expires: past}); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.GetRecord(ctx, "code", "old"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get of expired: err = %v, want ErrNotFound", err)
		}
		if ok, err := rs.DeleteRecord(ctx, "code", "old"); err != nil || ok {
			t.Errorf("Delete of expired = %v, %v; want false", ok, err)
		}
		if n, err := rs.DeleteGroup(ctx, "code", "g"); err != nil || n != 0 {
			t.Errorf("DeleteGroup of expired = %d, %v; want 0", n, err)
		}
		if list, err := rs.ListRecords(ctx, "code"); err != nil || len(list) != 0 {
			t.Errorf("List shows expired: %v, %v", list, err)
		}
		if err := rs.SwapRecord(ctx, store.Record{Kind: "code", Key: "old", Value: []byte("y")}, []byte("x")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Swap of expired: err = %v, want ErrNotFound", err)
		}
		// An expired record does not block an insert of its key.
		if err := rs.InsertRecord(ctx, store.Record{Kind: "code", Key: "old", Value: []byte("new")}); err != nil {
			t.Errorf("Insert over expired: %v", err)
		}
		if got, err := rs.GetRecord(ctx, "code", "old"); err != nil || string(got.Value) != "new" {
			t.Errorf("after insert over expired: %+v, %v", got, err)
		}
		// A record that expires while in use disappears.
		if err := rs.PutRecord(ctx, store.Record{Kind: "code", Key: "soon", Value: []byte("x"), Expires: time.Now().Add(50 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Millisecond)
		if _, err := rs.GetRecord(ctx, "code", "soon"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get after expiry: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("InsertConflict", func(t *testing.T) {
		r := store.Record{Kind: "jti", Key: "j1", Value: []byte("1"), Expires: future}
		if err := rs.InsertRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.Value = []byte("2")
		if err := rs.InsertRecord(ctx, r); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second insert: err = %v, want ErrConflict", err)
		}
		if got, _ := rs.GetRecord(ctx, "jti", "j1"); got == nil || string(got.Value) != "1" {
			t.Errorf("a refused insert changed the record: %+v", got)
		}
	})

	t.Run("ConcurrentInsertOneWins", func(t *testing.T) {
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := rs.InsertRecord(ctx, store.Record{Kind: "jti", Key: "race", Value: []byte{byte(i)}})
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("insert: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 7 {
			t.Errorf("wins = %d, conflicts = %d; want 1 and 7", wins.Load(), conflicts.Load())
		}
	})

	t.Run("Swap", func(t *testing.T) {
		if err := rs.PutRecord(ctx, store.Record{Kind: "refresh", Key: "r", Group: "g1", Value: []byte("active")}); err != nil {
			t.Fatal(err)
		}
		if err := rs.SwapRecord(ctx, store.Record{Kind: "refresh", Key: "r", Group: "g1", Value: []byte("used")}, []byte("stale")); !errors.Is(err, store.ErrConflict) {
			t.Errorf("swap with a stale old value: err = %v, want ErrConflict", err)
		}
		if err := rs.SwapRecord(ctx, store.Record{Kind: "refresh", Key: "r", Group: "g1", Value: []byte("used"), Expires: future}, []byte("active")); err != nil {
			t.Fatalf("swap: %v", err)
		}
		got, err := rs.GetRecord(ctx, "refresh", "r")
		if err != nil || string(got.Value) != "used" || got.Expires.IsZero() {
			t.Errorf("after swap: %+v, %v", got, err)
		}
		if err := rs.SwapRecord(ctx, store.Record{Kind: "refresh", Key: "missing", Value: []byte("x")}, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("swap of a missing record: err = %v, want ErrNotFound", err)
		}
		// Of concurrent swaps from the same old value, exactly one wins.
		if err := rs.PutRecord(ctx, store.Record{Kind: "refresh", Key: "race", Value: []byte("v0")}); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := rs.SwapRecord(ctx, store.Record{Kind: "refresh", Key: "race", Value: fmt.Appendf(nil, "v%d", i+1)}, []byte("v0"))
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, store.ErrConflict) {
					t.Errorf("swap: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d concurrent swaps won, want 1", wins.Load())
		}
	})

	t.Run("DeleteOnce", func(t *testing.T) {
		if err := rs.PutRecord(ctx, store.Record{Kind: "code", Key: "c1", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := rs.DeleteRecord(ctx, "code", "c1")
				if err != nil {
					t.Errorf("delete: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d deletes saw the record, want 1", wins.Load())
		}
		if _, err := rs.GetRecord(ctx, "code", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after delete: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("GroupsAndList", func(t *testing.T) {
		for i, g := range []string{"grant1", "grant1", "grant2", ""} {
			if err := rs.PutRecord(ctx, store.Record{Kind: "token", Key: fmt.Sprintf("t%d", i), Group: g, Value: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := rs.PutRecord(ctx, store.Record{Kind: "other", Key: "o", Group: "grant1", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if n, err := rs.DeleteGroup(ctx, "token", ""); err != nil || n != 0 {
			t.Errorf(`DeleteGroup("") = %d, %v; want 0`, n, err)
		}
		if n, err := rs.DeleteGroup(ctx, "token", "grant1"); err != nil || n != 2 {
			t.Errorf("DeleteGroup = %d, %v; want 2", n, err)
		}
		list, err := rs.ListRecords(ctx, "token")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range list {
			keys = append(keys, r.Key+"/"+r.Group)
		}
		if fmt.Sprint(keys) != "[t2/grant2 t3/]" {
			t.Errorf("left after DeleteGroup: %v", keys)
		}
		if _, err := rs.GetRecord(ctx, "other", "o"); err != nil {
			t.Errorf("DeleteGroup reached another kind: %v", err)
		}
	})
}
