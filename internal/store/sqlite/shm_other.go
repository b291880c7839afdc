//go:build !unix

package sqlite

import "github.com/wardenfhir/warden/internal/store/sqlstore"

// commitWatch is not built here: the read cache asks the database on
// every hit.
type commitWatch struct{}

func watchCommits(string) *commitWatch { return nil }

func (*commitWatch) CommitStamp() (sqlstore.CommitStamp, bool) { return sqlstore.CommitStamp{}, false }

func (*commitWatch) close() {}
