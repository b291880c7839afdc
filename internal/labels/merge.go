package labels

// Merge combines the labels a resource already carries (existing, for
// example sent by the client) with computed ones. The result is the union
// of both by system and code, where the ranked v3 Confidentiality codes
// (U < L < M < N < R < V) collapse into a single coding holding the
// highest level of either side — so a label is never lowered. Existing
// codings keep their order and their display; new ones follow in computed
// order; the confidentiality coding takes the place of the first one in
// existing, or comes last. Merge is idempotent:
// Merge(Merge(e, c), c) equals Merge(e, c).
func Merge(existing, computed []Coding) []Coding {
	best := ""
	for _, c := range existing {
		if isConfidentiality(c) && ConfidentialityRank(c.Code) > ConfidentialityRank(best) {
			best = c.Code
		}
	}
	for _, c := range computed {
		if isConfidentiality(c) && ConfidentialityRank(c.Code) > ConfidentialityRank(best) {
			best = c.Code
		}
	}
	out := make([]Coding, 0, len(existing)+len(computed))
	seen := make(map[Coding]bool, len(existing)+len(computed))
	placed := false
	add := func(c Coding) {
		if isConfidentiality(c) {
			if placed {
				return
			}
			placed = true
			if c.Code != best {
				c = Confidentiality(best)
			}
			out = append(out, c)
			return
		}
		key := Coding{System: c.System, Code: c.Code}
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, c)
	}
	for _, c := range existing {
		add(c)
	}
	for _, c := range computed {
		add(c)
	}
	return out
}
