// Package store defines the contract between Warden's FHIR API and the
// databases that hold resources: the Store interface, its errors, and (in
// storetest) the conformance suite every backend must pass.
//
// A Store keeps every version of every resource (history is never
// rewritten), the search index entries of current versions, and each
// current version's patient compartment membership. It does not validate,
// authorise or assign versions: callers hand it complete resources.
// Backends must never import net/http or policy packages.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// Errors returned by stores. Backends wrap them; callers test with errors.Is.
var (
	ErrNotFound    = errors.New("store: resource not found")
	ErrDeleted     = errors.New("store: resource deleted")
	ErrConflict    = errors.New("store: version conflict") // concurrent write to the same resource
	ErrUnavailable = errors.New("store: unavailable")      // database down, disk full: retry later
	ErrBadCursor   = errors.New("store: invalid or expired paging cursor")
)

// Resource is one version of a resource.
type Resource struct {
	Type        string
	ID          string
	Version     int64     // meta.versionId, 1, 2, …
	LastUpdated time.Time // kept to the microsecond
	Deleted     bool      // a deletion marker: JSON is nil
	JSON        []byte    // the full resource, meta included
	// Patients are the ids of the Patient compartments the version is
	// in (Write.Patients), sorted. Stores fill it for current versions
	// only (Read, Search matches and includes); for other versions it is
	// nil, which then means "not known", not "in none".
	Patients []string
	// Withheld names the sealed sensitivity categories whose content
	// the caller was not cleared to open (package sealing): JSON is then
	// the redacted form. Nil when nothing was withheld; stores leave it
	// nil.
	Withheld []string
}

// Write is one version to record in a transaction.
type Write struct {
	Resource Resource
	// Entries are the search index entries of this version; they replace
	// the entries of the previous current version.
	Entries []searchparam.Entry
	// Patients are the ids of the Patient compartments this version is in.
	Patients []string
}

// Store is a FHIR resource store.
//
// Implementations MUST be safe for concurrent use, MUST make a write
// durable before Tx returns nil, and MUST apply all writes of one Tx or
// none. Read-only methods MUST NOT block on writers longer than one
// transaction.
type Store interface {
	// Read returns the current version of a resource. A deleted resource
	// returns its deletion marker together with ErrDeleted. The caller
	// owns the Resource but MUST NOT change its JSON or Patients in
	// place: a cache may share them (appending is safe).
	Read(ctx context.Context, typ, id string) (*Resource, error)
	// VRead returns one version (ErrNotFound if it never existed).
	VRead(ctx context.Context, typ, id string, version int64) (*Resource, error)
	// History lists versions, newest first. Instance history of a
	// resource that never existed returns ErrNotFound.
	History(ctx context.Context, q HistoryQuery) (*HistoryPage, error)
	// Search runs a query over current, non-deleted resources. With
	// q.Count below 1 it returns no matches (Total when asked for).
	//
	// A reference value with URL set matches references written as that
	// absolute URL only, never a local Type/id: an absolute URL may name
	// a resource on another server. Callers MUST make references to
	// their own base relative, in resources before extraction and in
	// search values (clearing Value.URL), so that they match as Type/id.
	Search(ctx context.Context, q *search.Query, page PageRequest) (*SearchResult, error)
	// Tx runs fn in one atomic, durable transaction. If fn returns an
	// error, nothing it wrote is kept and Tx returns that error. If a
	// statement of the transaction fails (other than a Put's version
	// conflict), Tx fails even when fn ignores the error and returns nil.
	// fn MUST NOT call Tx: backends that serialise writers would wait
	// for themselves.
	Tx(ctx context.Context, fn func(Tx) error) error
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// Tx is a write transaction. Reads see the transaction's own writes.
type Tx interface {
	Read(ctx context.Context, typ, id string) (*Resource, error)
	Search(ctx context.Context, q *search.Query, page PageRequest) (*SearchResult, error)
	// Put records a new version. Resource.Version MUST be one more than
	// the current version (1 for a new resource); otherwise ErrConflict.
	// A Put with Resource.Deleted records a deletion.
	Put(ctx context.Context, w Write) error
	// Lock serialises conditional operations on key (for example
	// "Patient?identifier=x") until the transaction ends, so two
	// concurrent If-None-Exist creates cannot both create.
	Lock(ctx context.Context, key string) error
}

// HistoryQuery selects versions for instance, type or system history.
type HistoryQuery struct {
	Type  string    // "" for system history
	ID    string    // "" for type or system history
	Since time.Time // zero: no lower bound
	Count int       // page size; below 1, only Total is computed
	// After continues after a cursor from a previous page ("" for the first page).
	After string
	// Except leaves a type out of system history: the audit trail's
	// AuditEvents when its own index serves them, which merges them in.
	Except string
	// EachCursor asks for HistoryPage.After (type and system history): a
	// cursor after every version of the page, not only the last, so that
	// a caller merging two histories can continue after the last version
	// it took from each.
	EachCursor bool
}

// HistoryPage is one page of history, newest first.
type HistoryPage struct {
	Versions []Resource
	Next     string // cursor for the next page, "" if none
	Total    int    // number of versions matching (all pages)
	// After[i] continues after Versions[i]; only with HistoryQuery.EachCursor.
	After []string
}

// PageRequest selects a page of search results.
type PageRequest struct {
	// Cursor continues a previous search; "" for the first page. Stores
	// make cursors opaque to clients only together with the API's sealing;
	// here they are plain strings. A cursor MUST be used with the query
	// that produced it; stores reject the ones they can tell apart with
	// ErrBadCursor.
	Cursor string
	// WantTotal asks for the total number of matches.
	WantTotal bool
	// OnlyCount skips fetching resources (_summary=count).
	OnlyCount bool
}

// PageLinks returns the cursors of the pages next to a search page of n
// rows: at(i, back) is the cursor at the page's row i for the page after
// it (back false) or before it; more is whether rows remain beyond the
// page in the direction it was read (back: towards the first); resumed
// is whether the request continued a cursor, and turned that cursor
// pointing the other way, offered when nothing is left on its side.
func PageLinks(n int, more, back, resumed bool, at func(i int, back bool) string, turned func() string) (next, prev string) {
	switch {
	case n == 0 && resumed:
		if back {
			return turned(), ""
		}
		return "", turned()
	case n > 0 && !back:
		if more {
			next = at(n-1, false)
		}
		if resumed {
			prev = at(0, true)
		}
	case n > 0 && back:
		next = at(n-1, false)
		if more {
			prev = at(0, true)
		}
	}
	return next, prev
}

// SearchResult is one page of matches plus included resources.
type SearchResult struct {
	Matches  []Resource
	Included []Resource
	Total    int    // -1 when not computed
	Next     string // cursor of the next page, "" if last
	Prev     string // cursor of the previous page, "" if first
}

// Record is one entry of the small keyed tables Warden keeps beside the
// resources: OAuth clients, users, grants, authorization codes, refresh
// tokens, seen assertion ids, signing keys. Values are opaque bytes that
// their owner encodes (and, for secrets, encrypts).
type Record struct {
	Kind  string // the table: "client", "user", "refresh", …
	Key   string // unique within Kind
	Group string // a secondary key shared by related records (a grant id); "" for none
	Value []byte
	// Expires is when the record stops existing; zero means never.
	// Expired records are invisible to every method and removed lazily.
	Expires time.Time
}

// Records stores Records. Stores that hold resources implement it too.
//
// Implementations MUST make every change durable before returning and MUST
// treat a record whose Expires has passed as absent.
type Records interface {
	// PutRecord inserts or replaces the record with r's Kind and Key.
	PutRecord(ctx context.Context, r Record) error
	// InsertRecord inserts r, or returns ErrConflict if a live record
	// with its Kind and Key exists (use it for single-use ids: jti).
	InsertRecord(ctx context.Context, r Record) error
	// SwapRecord replaces the live record with r's Kind and Key only if
	// its current value equals old (compare-and-swap); ErrConflict if it
	// differs, ErrNotFound if there is no live record.
	SwapRecord(ctx context.Context, r Record, old []byte) error
	// GetRecord returns the live record, or ErrNotFound.
	GetRecord(ctx context.Context, kind, key string) (*Record, error)
	// DeleteRecord removes the record and reports whether a live one
	// existed: of two concurrent deletes, exactly one sees true (use it
	// to consume single-use codes).
	DeleteRecord(ctx context.Context, kind, key string) (bool, error)
	// DeleteGroup removes every record of kind in group and returns how
	// many live ones it removed. group "" matches nothing.
	DeleteGroup(ctx context.Context, kind, group string) (int, error)
	// ListRecords returns the live records of kind ordered by Key.
	ListRecords(ctx context.Context, kind string) ([]Record, error)
}
