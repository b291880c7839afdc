#!/usr/bin/env bash
# Requests per second and the server's memory, phase by phase. Usage:
#   bench/phases.sh [seconds]
# Builds warden, imports the shared Synthea patients and serves them (the
# audit trail on; request limits and detection off, as in bench/run.sh);
# then wrk at concurrency 32 over TLS keep-alive runs, in turn, reads by
# id, the patient+code search, creates and 100-entry transactions, and
# reads (28 connections) while creates (4) run beside them; after each
# phase the script prints the server's RSS (anonymous and file pages
# apart). Settings come from the environment, so one setting can be
# compared with its default: WARDEN_AUDIT_INDEX_RATE=1 bench/phases.sh 8.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
SYNTHEA=${SYNTHEA:-../shared/data/synthea}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
work=$(mktemp -d /tmp/wardenbench.XXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/warden" ./cmd/warden
go build -o "$work/backendtoken" ./bench/backendtoken
export WARDEN_DATA_DIR=$work/data WARDEN_LOG_LEVEL=warn WARDEN_LIMITS_DISABLED=true WARDEN_DETECTION_DISABLED=true
"$work/warden" import "$SYNTHEA" >/dev/null
WARDEN_SERVER_ADDR=127.0.0.1:18443 WARDEN_ADMIN_ADDR=127.0.0.1:19464 "$work/warden" serve 2>"$work/serve.log" &
pid=$!
CA=$work/data/pki/ca.pem
B=https://127.0.0.1:18443/fhir
for i in $(seq 100); do curl -sf --cacert "$CA" https://127.0.0.1:18443/healthz >/dev/null && break; sleep 0.2; done
"$work/backendtoken" -gen "$work"
cid=$(WARDEN_ADMIN_ADDR=127.0.0.1:19464 "$work/warden" clients add --type backend --name bench --scopes 'system/*.cruds' --jwks-file "$work/jwks.json" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
AUTH="Authorization: Bearer $("$work/backendtoken" -issuer "$B" -ca "$CA" -client "$cid" -key "$work/key.pem" -scope 'system/*.cruds')"
PAT=08bb5ad8-79b2-47ef-a0ad-81ef0b4ab2c3
CODE='http%3A%2F%2Floinc.org%7C72514-3'
cat >"$work/obs.json" <<JSON
{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/$PAT"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}
JSON
python3 - "$work/obs.json" "$work/tx.json" <<'PY'
import json, sys, uuid
obs = json.load(open(sys.argv[1]))
entries = [{"fullUrl": "urn:uuid:%s" % uuid.uuid4(), "resource": obs, "request": {"method": "POST", "url": "Observation"}} for _ in range(100)]
json.dump({"resourceType": "Bundle", "type": "transaction", "entry": entries}, open(sys.argv[2], "w"))
PY
mem() { awk '/VmRSS|RssAnon|RssFile/ {printf "%s %d MB  ", $1, $2/1024}' /proc/$pid/status; }
phase() { # NAME LUA wrk-args...
  local name=$1 lua=$2; shift 2
  local res; res=$(wrk -t2 -c32 -d${DUR}s --latency -s "$lua" "$@" | tail -1)
  printf '%-14s %s  %s\n' "$name" "$res" "$(mem)"
}
printf '%-14s %s\n' idle "$(mem)"
phase read bench/wrk/report.lua -H "$AUTH" "$B/Patient/$PAT"
phase search bench/wrk/report.lua -H "$AUTH" "$B/Observation?patient=$PAT&code=$CODE&_count=50"
BODY=$work/obs.json phase create bench/wrk/post.lua -H "$AUTH" "$B/Observation"
BODY=$work/tx.json phase transaction100 bench/wrk/post.lua -H "$AUTH" "$B"
# Reads while creates commit (28 + 4 connections): every commit makes the
# read cache confirm its entries with the database again.
BODY=$work/obs.json wrk -t1 -c4 -d${DUR}s --latency -s bench/wrk/post.lua -H "$AUTH" "$B/Observation" | tail -1 >"$work/mixed-create" &
res=$(wrk -t2 -c28 -d${DUR}s --latency -s bench/wrk/report.lua -H "$AUTH" "$B/Patient/$PAT" | tail -1)
wait $!
printf '%-14s %s  %s\n' "read (mixed)" "$res" "$(mem)"
printf '%-14s %s\n' "create (mixed)" "$(cat "$work/mixed-create")"
sleep 5
printf '%-14s %s\n' "5 s later" "$(mem)"
