// Package limits owns Warden's FHIR-aware rate and cost limits: what a
// request costs in FHIR terms (Cost), the limits per client, user, patient
// context, source address and client certificate (GCRA buckets), the
// concurrency cap per client, the budget of distinct patients a client or
// user may touch per window, and the 429 answer (WriteTooMany).
//
// State lives behind Store: MemoryStore for one process, and the Redis
// store in limits/redislimit for several replicas. A Store evaluates all of
// one request's buckets at once, all or nothing, so a request refused by
// one limit never spends another limit's budget.
//
// This package never sees resource content and never logs: a Decision
// names the limit that refused (its class, never an identifier), so it can
// go to logs and to the client as it is. It never decides who a caller is:
// the caller hands it the Keys of a verified principal and a trusted peer
// address.
package limits
