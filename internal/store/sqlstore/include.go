package sqlstore

import (
	"context"
	"slices"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// include resolves _include and _revinclude (FHIR R4 §3.1.1.5.4) for a
// page of matches: the current, non-deleted resources they reference or
// that reference them, then, for the :iterate directives, one more level
// from the resources included so far. Each resource appears once, and
// never when it is a match itself.
func (s *Store) include(ctx context.Context, db Querier, q *search.Query, matches []row) ([]store.Resource, error) {
	seen := make(map[int64]bool, len(matches))
	for _, m := range matches {
		seen[m.pk] = true
	}
	var out []store.Resource
	level := matches
	for depth := 0; depth < 2 && len(level) > 0; depth++ {
		var found []row
		add := func(rows []row) {
			for _, r := range rows {
				if !seen[r.pk] {
					seen[r.pk] = true
					found = append(found, r)
				}
			}
		}
		for _, inc := range q.Includes {
			if depth > 0 && !inc.Iterate {
				continue
			}
			rows, err := s.forward(ctx, db, inc, level)
			if err != nil {
				return nil, err
			}
			add(rows)
		}
		for _, inc := range q.RevIncludes {
			if depth > 0 && !inc.Iterate {
				continue
			}
			rows, err := s.reverse(ctx, db, inc, level)
			if err != nil {
				return nil, err
			}
			add(rows)
		}
		for _, r := range found {
			out = append(out, r.Resource)
		}
		level = found
	}
	return out, nil
}

// paramFilter renders the condition that ref.param belongs to the
// reference parameter of inc on its source type, or to any parameter of
// the source type when inc names none ("*").
func paramFilter(inc search.Include) sqlText {
	if inc.Param != nil {
		return text("ref.param = ?", paramKey(inc.SourceType, inc.Param.Code))
	}
	lo := inc.SourceType + "."
	hi, _ := prefixEnd(lo)
	return text("ref.param >= ? AND ref.param < ?", lo, hi)
}

// forward follows the references of inc from the resources of from that
// are of its source type.
func (s *Store) forward(ctx context.Context, db Querier, inc search.Include, from []row) ([]row, error) {
	var pks []int64
	for _, r := range from {
		if r.Type == inc.SourceType {
			pks = append(pks, r.pk)
		}
	}
	if len(pks) == 0 {
		return nil, nil
	}
	var w sqlBuf
	w.s("SELECT ", resourceColumns, " FROM resources r WHERE r.is_current AND NOT r.deleted AND (r.type, r.id) IN (SELECT ref.ref_type, ref.ref_id FROM idx_reference ref WHERE ").
		in(s.d, "ref.pk", pks)
	w.s(" AND ").t(paramFilter(inc)).s(" AND ref.ref_id IS NOT NULL")
	if inc.TargetType != "" {
		w.s(" AND ref.ref_type = ").arg(inc.TargetType)
	}
	w.s(") ORDER BY r.pk")
	t := w.text()
	rows, err := db.Query(ctx, t.sql, t.args...)
	if err != nil {
		return nil, err
	}
	return scanResources(rows)
}

// reverse finds the resources of inc's source type whose inc reference
// points at a resource of to (restricted to inc.TargetType when set).
func (s *Store) reverse(ctx context.Context, db Querier, inc search.Include, to []row) ([]row, error) {
	byType := map[string][]string{}
	var types []string
	for _, r := range to {
		if inc.TargetType != "" && r.Type != inc.TargetType {
			continue
		}
		if byType[r.Type] == nil {
			types = append(types, r.Type)
		}
		byType[r.Type] = append(byType[r.Type], key(r.ID))
	}
	if len(types) == 0 {
		return nil, nil
	}
	slices.Sort(types)
	var w sqlBuf
	w.s("SELECT ", resourceColumns, " FROM resources r WHERE r.pk IN (")
	for i, t := range types {
		if i > 0 {
			w.s(" UNION ")
		}
		w.s("SELECT ref.pk FROM idx_reference ref WHERE ref.comp = 0 AND ref.ref_type = ").arg(t).s(" AND ").in(s.d, "ref.ref_id", byType[t])
		w.s(" AND ").t(paramFilter(inc))
	}
	w.s(") ORDER BY r.pk")
	t := w.text()
	rows, err := db.Query(ctx, t.sql, t.args...)
	if err != nil {
		return nil, err
	}
	return scanResources(rows)
}
