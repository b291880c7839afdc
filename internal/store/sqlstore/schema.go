package sqlstore

import (
	"context"
	"fmt"
	"strings"
)

// Types names the column types of a database for Schema.
type Types struct {
	PK           string // the resources primary key column type, auto-assigned
	Int          string // 64-bit integer
	Real         string // 64-bit float
	Text         string // text compared byte by byte (binary collation)
	Bool         string
	Blob         string
	WithoutRowID string // table suffix for tables clustered on their primary key, or ""
}

// Schema returns the migrations of the resource schema written with the
// column types of t. Migration i brings the schema from version i to i+1;
// existing migrations MUST NOT change once released, new ones are
// appended.
//
// Version 1:
//
//	resources       one row per resource version. The current version
//	                keeps the row (and pk) of the resource's first
//	                version; older versions move to rows of their own.
//	                is_current marks current rows; deleted marks
//	                deletion markers (json NULL); idx is a bitmask of the
//	                index tables holding rows for this pk; last_updated
//	                is in Unix microseconds.
//	idx_string      param, norm (searchparam.NormalizeString), exact
//	idx_token       param, system, code, display (normalised, for :text)
//	idx_reference   param, ref_type + ref_id (resource references),
//	                url (other references), system + code (identifier)
//	idx_date        param, [lo, hi) in Unix microseconds
//	idx_number      param, num, [lo, hi) the precision range
//	idx_quantity    param, num, lo, hi, system, code, unit (normalised)
//	idx_uri         param, uri
//	compartment     patient_id, rtype, pk: Patient compartment membership
//
// Version 2:
//
//	records         store.Records: kind, key (unique together), grp (a
//	                secondary key, '' for none), value, expires (Unix
//	                microseconds, 0 for never)
//
// Version 3:
//
//	idx_token.patient  the Patient the resource belongs to: the one id
//	                among its Patient compartments and the Patients its
//	                relative references point at, "*" when there are
//	                several, NULL when none (see tokenPatient); NULL in
//	                the rows of some parameters (patientToken). Every
//	                resource in Patient X's compartment or referring to
//	                Patient/X has X or "*" there, so idx_token_patient
//	                finds a patient's resources with a code in one range
//	                scan (see compiler.patientDriver).
//
// Index rows belong to current, non-deleted versions only and are keyed
// by (pk, param, seq); param is "Type.code" ("Observation.code"), so one
// B-tree serves every resource type without mixing them. A composite
// parameter stores each component in the table of its type under
// "Type.code$i" (i from 0), the components of one value sharing seq;
// comp is i. Searches reach a composite through its component 0 and the
// other components through the primary key, so the value indexes are
// partial, on comp = 0, and a search of them says so.
func Schema(t Types) [][]string {
	r := strings.NewReplacer(
		"{PK}", t.PK, "{INT}", t.Int, "{REAL}", t.Real, "{TEXT}", t.Text,
		"{BOOL}", t.Bool, "{BLOB}", t.Blob, "{WITHOUT_ROWID}", t.WithoutRowID,
	)
	v1 := []string{
		`CREATE TABLE resources (
			pk {PK},
			type {TEXT} NOT NULL,
			id {TEXT} NOT NULL,
			version {INT} NOT NULL,
			last_updated {INT} NOT NULL,
			deleted {BOOL} NOT NULL,
			is_current {BOOL} NOT NULL,
			idx {INT} NOT NULL,
			json {BLOB}
		)`,
		`CREATE UNIQUE INDEX resources_version ON resources (type, id, version)`,
		// is_current and deleted make the index covering for SQLite, which
		// otherwise counts a type through the table.
		`CREATE INDEX resources_live ON resources (type, pk, is_current, deleted) WHERE is_current AND NOT deleted`,
		`CREATE INDEX resources_type_time ON resources (type, last_updated, pk)`,
		`CREATE INDEX resources_time ON resources (last_updated, pk)`,

		`CREATE TABLE idx_string (
			pk {INT} NOT NULL, param {TEXT} NOT NULL, seq {INT} NOT NULL, comp {INT} NOT NULL,
			norm {TEXT} NOT NULL, exact {TEXT} NOT NULL,
			PRIMARY KEY (pk, param, seq)
		){WITHOUT_ROWID}`,
		`CREATE INDEX idx_string_norm ON idx_string (param, norm) WHERE comp = 0`,

		`CREATE TABLE idx_token (
			pk {INT} NOT NULL, param {TEXT} NOT NULL, seq {INT} NOT NULL, comp {INT} NOT NULL,
			system {TEXT} NOT NULL, code {TEXT} NOT NULL, display {TEXT} NOT NULL,
			PRIMARY KEY (pk, param, seq)
		){WITHOUT_ROWID}`,
		`CREATE INDEX idx_token_code ON idx_token (param, code, pk, system) WHERE comp = 0`,

		`CREATE TABLE idx_reference (
			pk {INT} NOT NULL, param {TEXT} NOT NULL, seq {INT} NOT NULL, comp {INT} NOT NULL,
			ref_type {TEXT}, ref_id {TEXT}, url {TEXT}, system {TEXT}, code {TEXT},
			PRIMARY KEY (pk, param, seq)
		){WITHOUT_ROWID}`,
		`CREATE INDEX idx_reference_target ON idx_reference (ref_id, ref_type, param, pk) WHERE ref_id IS NOT NULL AND comp = 0`,
		`CREATE INDEX idx_reference_url ON idx_reference (url, param, pk) WHERE url IS NOT NULL AND comp = 0`,
		`CREATE INDEX idx_reference_identifier ON idx_reference (param, code, pk, system) WHERE code IS NOT NULL AND comp = 0`,

		`CREATE TABLE idx_date (
			pk {INT} NOT NULL, param {TEXT} NOT NULL, seq {INT} NOT NULL, comp {INT} NOT NULL,
			lo {INT} NOT NULL, hi {INT} NOT NULL,
			PRIMARY KEY (pk, param, seq)
		){WITHOUT_ROWID}`,
		`CREATE INDEX idx_date_lo ON idx_date (param, lo, hi) WHERE comp = 0`,
		`CREATE INDEX idx_date_hi ON idx_date (param, hi, lo) WHERE comp = 0`,

		`CREATE TABLE idx_number (
			pk {INT} NOT NULL, param {TEXT} NOT NULL, seq {INT} NOT NULL, comp {INT} NOT NULL,
			num {REAL} NOT NULL, lo {REAL} NOT NULL, hi {REAL} NOT NULL,
			PRIMARY KEY (pk, param, seq)
		){WITHOUT_ROWID}`,
		`CREATE INDEX idx_number_range ON idx_number (param, lo, hi) WHERE comp = 0`,

		`CREATE TABLE idx_quantity (
			pk {INT} NOT NULL, param {TEXT} NOT NULL, seq {INT} NOT NULL, comp {INT} NOT NULL,
			num {REAL} NOT NULL, lo {REAL} NOT NULL, hi {REAL} NOT NULL,
			system {TEXT} NOT NULL, code {TEXT} NOT NULL, unit {TEXT} NOT NULL,
			PRIMARY KEY (pk, param, seq)
		){WITHOUT_ROWID}`,
		`CREATE INDEX idx_quantity_range ON idx_quantity (param, lo, hi) WHERE comp = 0`,

		`CREATE TABLE idx_uri (
			pk {INT} NOT NULL, param {TEXT} NOT NULL, seq {INT} NOT NULL, comp {INT} NOT NULL,
			uri {TEXT} NOT NULL,
			PRIMARY KEY (pk, param, seq)
		){WITHOUT_ROWID}`,
		`CREATE INDEX idx_uri_value ON idx_uri (param, uri, pk) WHERE comp = 0`,

		`CREATE TABLE compartment (
			patient_id {TEXT} NOT NULL, rtype {TEXT} NOT NULL, pk {INT} NOT NULL,
			PRIMARY KEY (patient_id, rtype, pk)
		){WITHOUT_ROWID}`,
		`CREATE INDEX compartment_pk ON compartment (pk)`,
	}
	v2 := []string{
		`CREATE TABLE records (
			kind {TEXT} NOT NULL, key {TEXT} NOT NULL, grp {TEXT} NOT NULL,
			value {BLOB} NOT NULL, expires {INT} NOT NULL,
			PRIMARY KEY (kind, key)
		){WITHOUT_ROWID}`,
		`CREATE INDEX records_grp ON records (kind, grp) WHERE grp <> ''`,
		`CREATE INDEX records_expires ON records (expires) WHERE expires <> 0`,
	}
	// patientOf is the patient column of table's rows by the rule of
	// tokenPatient: the one Patient of their resource's compartment and
	// Patient references, "*" for several, NULL for none.
	patientOf := func(table string) string {
		return `(
			SELECT CASE COUNT(*) WHEN 0 THEN NULL WHEN 1 THEN MIN(u.p) ELSE '*' END FROM (
				SELECT c.patient_id AS p FROM compartment c WHERE c.pk = ` + table + `.pk
				UNION
				SELECT r.ref_id AS p FROM idx_reference r WHERE r.pk = ` + table + `.pk AND r.ref_id IS NOT NULL AND (r.ref_type = 'Patient' OR r.ref_type IS NULL)
			) u
		)`
	}
	v3 := []string{
		`ALTER TABLE idx_token ADD COLUMN patient {TEXT}`,
		// The rows written before: the same rule as tokenPatient, from
		// the compartment and reference rows of their resource.
		`UPDATE idx_token SET patient = ` + patientOf("idx_token") + ` WHERE comp = 0 AND param NOT LIKE '%$%' AND param NOT LIKE '%.\_tag' ESCAPE '\' AND param NOT LIKE '%.\_security' ESCAPE '\' AND param NOT LIKE '%.identifier'`,
		`CREATE INDEX idx_token_patient ON idx_token (patient, param, code, pk, system) WHERE patient IS NOT NULL AND comp = 0`,
	}
	v4 := []string{
		`ALTER TABLE idx_date ADD COLUMN patient {TEXT}`,
		// The rule of tokenPatient, as in v3.
		`UPDATE idx_date SET patient = ` + patientOf("idx_date") + ` WHERE comp = 0`,
		// One Patient's dates in the orders of _sort (Store.dateWalk):
		// descending by the highest, ascending by the lowest, ties by pk.
		`CREATE INDEX idx_date_patient_hi ON idx_date (patient, param, hi DESC, pk) WHERE patient IS NOT NULL AND comp = 0`,
		`CREATE INDEX idx_date_patient_lo ON idx_date (patient, param, lo, pk) WHERE patient IS NOT NULL AND comp = 0`,
	}
	out := [][]string{v1, v2, v3, v4}
	for _, m := range out {
		for i, s := range m {
			m[i] = r.Replace(s)
		}
	}
	return out
}

// schemaLockKey is the Dialect.Lock key that serialises migrations of
// several processes opening one database.
const schemaLockKey = "warden:schema"

// Migrate creates or upgrades the schema of the database under b to the
// newest version of b's dialect, in one transaction, and records it in the
// schema_version table. A database whose schema is newer than this code
// knows is refused.
func Migrate(ctx context.Context, b Backend) error {
	d := b.Dialect()
	migrations := d.Migrations()
	err := b.Update(ctx, func(q Querier) error {
		// Lock first: two processes creating the same table at once
		// would collide in PostgreSQL's catalog.
		if err := d.Lock(ctx, q, schemaLockKey); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		rows, err := q.Query(ctx, `SELECT version FROM schema_version`)
		if err != nil {
			return err
		}
		var versions []int64
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			versions = append(versions, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var have int64
		switch len(versions) {
		case 0:
			if _, err := q.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
		case 1:
			have = versions[0]
		default:
			return fmt.Errorf("sqlstore: schema_version holds %d rows, want 1", len(versions))
		}
		if have > int64(len(migrations)) {
			return fmt.Errorf("sqlstore: database schema version %d is newer than this program's %d", have, len(migrations))
		}
		for v := have; v < int64(len(migrations)); v++ {
			for _, stmt := range migrations[v] {
				if _, err := q.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("sqlstore: migrating schema to version %d: %w", v+1, err)
				}
			}
		}
		if have < int64(len(migrations)) {
			if _, err := q.Exec(ctx, `UPDATE schema_version SET version = ?`, int64(len(migrations))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return d.Err(err)
	}
	return nil
}
