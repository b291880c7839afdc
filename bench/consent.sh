#!/usr/bin/env bash
# What consent enforcement costs a read (issue: consent in the API layer).
# Usage:
#   bench/consent.sh [seconds] [rounds]
# Builds warden, imports the shared Synthea patients and serves them (the
# audit trail on, as in production; request limits off, since wrk is one
# address). One server, two patients side by side: patient A has 20
# active privacy Consents that name the benchmark client (so every read
# of A's data reads the resource's facts and decides 20 consents), patient
# B has none (the check is one cache lookup: the same work as with consent
# enforcement off). wrk at concurrency 32 over TLS keep-alive reads an
# Observation of each, alternating for ROUNDS rounds; it reports req/s and
# p50 of each and A's throughput as a share of B's.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
ROUNDS=${2:-2}
CONC=32
SYNTHEA=${SYNTHEA:-../shared/data/synthea}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
work=$(mktemp -d /tmp/wardenbench.XXXX)
out=bench/out; mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/warden" ./cmd/warden
go build -o "$work/backendtoken" ./bench/backendtoken
export WARDEN_DATA_DIR=$work/data WARDEN_LOG_LEVEL=warn WARDEN_LIMITS_DISABLED=true WARDEN_DETECTION_DISABLED=true
"$work/warden" import "$SYNTHEA" >/dev/null

B=https://127.0.0.1:18443/fhir
WARDEN_SERVER_ADDR=127.0.0.1:18443 WARDEN_ADMIN_ADDR=127.0.0.1:19464 "$work/warden" serve 2>"$work/serve.log" & pids+=($!)
CA=$work/data/pki/ca.pem
for i in $(seq 100); do curl -sf --cacert "$CA" https://127.0.0.1:18443/healthz >/dev/null && break; sleep 0.2; done

"$work/backendtoken" -gen "$work"
cid=$(WARDEN_ADMIN_ADDR=127.0.0.1:19464 "$work/warden" clients add --type backend --name bench --scopes 'system/*.cruds' --jwks-file "$work/jwks.json" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
AUTH="Authorization: Bearer $("$work/backendtoken" -issuer "$B" -ca "$CA" -client "$cid" -key "$work/key.pem" -scope 'system/*.cruds')"

# Two patients and one unlabelled Observation of each.
read -r PA PB < <(curl -sf --cacert "$CA" -H "$AUTH" "$B/Patient?_count=2&_elements=id" |
  python3 -c 'import json,sys; b=json.load(sys.stdin); print(*[e["resource"]["id"] for e in b["entry"]])')
obs() { curl -sf --cacert "$CA" -H "$AUTH" "$B/Observation?patient=$1&_security:not=R&_count=1&_elements=id" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["entry"][0]["resource"]["id"])'; }
OA=$(obs "$PA"); OB=$(obs "$PB")

run() { # NAME URL
  wrk -t2 -c$CONC -d${DUR}s --latency -s bench/wrk/report.lua -H "$AUTH" "$2" | tail -1 |
    sed "s/}\$/,\"name\":\"$1\"}/" | tee -a "$out/consent.jsonl"
}
res=()
# Phase 1: neither patient has a consent (A's and B's Observations differ
# in size; this measures that difference).
for r in $(seq "$ROUNDS"); do
  res+=("$(run before-A "$B/Observation/$OA")")
  res+=("$(run before-B "$B/Observation/$OB")")
done
# Patient A's 20 consents: each denies the client one sensitive category
# (none of which the read Observation carries) for some period.
for i in $(seq 20); do
  label=$(python3 -c "print(['PSY','ETH','HIV','SEX','SDV','GDIS'][$i % 6])")
  curl -sf --cacert "$CA" -H "$AUTH" -H 'Content-Type: application/fhir+json' -X PUT "$B/Consent/bench-$i" -d @- >/dev/null <<JSON
{"resourceType":"Consent","id":"bench-$i","status":"active",
 "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
 "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
 "patient":{"reference":"Patient/$PA"},
 "provision":{"type":"deny","period":{"start":"20$((10 + i % 10))-01-01"},
  "actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},
            "reference":{"identifier":{"system":"urn:warden:oauth-client","value":"$cid"}}}],
  "securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"$label"}]}}
JSON
done
curl -sf --cacert "$CA" -H "$AUTH" "$B/Observation/$OA" >/dev/null || { echo "patient A's Observation is not readable" >&2; exit 1; }

# Phase 2: A has 20 consents naming the client, B none.
for r in $(seq "$ROUNDS"); do
  res+=("$(run after-A "$B/Observation/$OA")")
  res+=("$(run after-B "$B/Observation/$OB")")
done
python3 - "${res[@]}" <<'PY'
import json, sys, statistics as st
rs = [json.loads(a) for a in sys.argv[1:]]
for r in rs: assert r["errors"] == 0 and r["non2xx"] == 0, r
by = lambda n: [r for r in rs if r["name"] == n]
m = lambda xs, k: st.median(x[k] for x in xs)
print("| phase | patient A req/s | patient B req/s | A/B |\n|---|---|---|---|")
r0 = m(by("before-A"), "rps") / m(by("before-B"), "rps")
r1 = m(by("after-A"), "rps") / m(by("after-B"), "rps")
print("| no consents | %.0f | %.0f | %.3f |" % (m(by("before-A"), "rps"), m(by("before-B"), "rps"), r0))
print("| A: 20 consents naming the client | %.0f | %.0f | %.3f |" % (m(by("after-A"), "rps"), m(by("after-B"), "rps"), r1))
print("\nreads of A under 20 consents: %.0f%% of their throughput without (A/B after over A/B before); p50 %.2f -> %.2f ms" %
      (100 * r1 / r0, m(by("before-A"), "p50_ms"), m(by("after-A"), "p50_ms")))
PY
