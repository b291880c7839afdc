// Package detect owns Warden's inline abuse detection: it watches each
// finished request (Event), keeps per-client, per-user, per-token and
// per-peer behaviour in bounded in-process state, scores the signals of
// issue 8 (distinct-patient velocity against a learned baseline, ID
// probing, bursts of 401/403/404 and empty results, bulk-shaped queries
// from clients that never do bulk, access to patients without a care
// relationship, unusual hours, one token on two networks, spoofed
// forwarding headers), and lets a Policy turn the sum of the scores into
// an Action: alert, step-up (the RFC 9470 challenge the API sends),
// throttle or quarantine of a token, user, client or peer address.
//
// Observe runs after each request and returns the Verdict; Check runs
// before each request and answers the standing throttle, quarantine or
// step-up in well under a microsecond. Alerts go to Sinks (Prometheus
// and webhook sinks live in the promsink and webhook sub-packages; the
// audit sink is the API's).
//
// This package never speaks HTTP, never decides who a caller is (the
// caller hands it verified identities and a trusted peer address), and
// never lets PHI out: a Signal's Detail and an Alert hold counts and the
// caller's own identifiers, never a patient id or a query value. Its
// state lives in one process; docs/DETECTION.md says what several
// replicas lose.
package detect
