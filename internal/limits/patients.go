package limits

import (
	"context"
	"slices"
)

// Touch counts the distinct patients a response discloses against the
// budgets of k's client and user, all or nothing: call it once the
// response's patients are known and before it is released, and answer
// 429 instead when it refuses. Touching a patient already in the window
// is free (and keeps it there for another window).
func (l *Limiter) Touch(ctx context.Context, k Keys, patients []string) (Decision, error) {
	if l.cfg.Disabled || k.Client == "" {
		return Decision{Allowed: true}, nil
	}
	patients = distinct(patients)
	if len(patients) == 0 {
		return Decision{Allowed: true}, nil
	}
	p := l.profile(k)
	var bArr [2]Budget
	var lArr [2]string
	budgets, limits := bArr[:0], lArr[:0]
	budgets = append(budgets, Budget{Key: "dp-client/" + k.Client, Count: p.dpClient.Count, Window: p.dpClient.Window})
	limits = append(limits, p.limDPClient)
	if k.User != "" {
		budgets = append(budgets, Budget{Key: scoped("dp-user", p.key, k.User), Count: p.dpUser.Count, Window: p.dpUser.Window})
		limits = append(limits, p.limDPUser)
	}
	var sArr [2]BudgetState
	states := sArr[:len(budgets)]
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if err := l.store.Touch(ctx, l.now(), budgets, patients, states); err != nil {
		return l.storeFailed(err)
	}
	pick, allowed := -1, true
	for i, st := range states {
		switch {
		case !st.Allowed && (allowed || st.RetryAfter > states[pick].RetryAfter):
			pick, allowed = i, false
		case allowed && (pick < 0 || st.Remaining < states[pick].Remaining):
			pick = i
		}
	}
	b := budgets[pick]
	return Decision{Allowed: allowed, RetryAfter: states[pick].RetryAfter, Limit: limits[pick], Policy: [2]string{"patients-client", "patients-user"}[pick],
		Remaining: states[pick].Remaining, Quota: b.Count, Window: b.Window, Reset: b.Window}, nil
}

// distinct returns the non-empty ids of patients once each, in a new
// slice when it has to change anything.
func distinct(patients []string) []string {
	clean := true
	for i, p := range patients {
		if p == "" || slices.Contains(patients[:i], p) {
			clean = false
			break
		}
		if i > 16 { // long lists: sort a copy instead of quadratic checks
			clean = false
			break
		}
	}
	if clean {
		return patients
	}
	out := slices.Clone(patients)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 0 && out[0] == "" {
		out = out[1:]
	}
	return out
}
