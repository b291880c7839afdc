#!/usr/bin/env bash
# Warden's HTTP benchmarks (issue: foundation). Usage:
#   bench/run.sh [sqlite|postgres|postgres://DSN] [seconds]
# ("postgres" starts a throwaway PostgreSQL cluster on 127.0.0.1:55432.)
# Builds warden and the bare yardstick server, imports the shared Synthea
# patients (import rate), then loads the server with wrk at concurrency 32
# over TLS keep-alive: read by id, the patient+code search, create, and a
# 100-entry transaction; each read-type figure is compared with the bare
# Go HTTPS server returning the same bytes from memory, and with the same
# API with enforcement switched off (bench/openserver), in the same run.
# Warden is called as a SMART Backend Services client would: a system
# token from client_credentials with a signed assertion.
# Prints a Markdown table; raw numbers go to bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${1:-sqlite}
DUR=${2:-15}
CONC=32
SYNTHEA=${SYNTHEA:-../shared/data/synthea}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

work=$(mktemp -d /tmp/wardenbench.XXXX)
out=bench/out; mkdir -p "$out"
pids=()
pgstop() { :; }
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pgstop; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/warden" ./cmd/warden
go build -o "$work/bare" ./bench/bareserver
go build -o "$work/open" ./bench/openserver
go build -o "$work/backendtoken" ./bench/backendtoken

export WARDEN_DATA_DIR=$work/data
export WARDEN_SERVER_ADDR=127.0.0.1:18443
export WARDEN_ADMIN_ADDR=127.0.0.1:19464
export WARDEN_LOG_LEVEL=warn
# Request limits (on by default) would throttle a load generator on one
# address: these benchmarks measure the server, not the guard.
export WARDEN_LIMITS_DISABLED=true WARDEN_DETECTION_DISABLED=true
case "$STORE" in
sqlite) ;;
postgres) # a throwaway cluster on loopback, as scripts/test makes one
  . bench/pg.sh; pg_start "$work"
  export WARDEN_STORE_URL=$(PG_URL postgres) ;;
*) export WARDEN_STORE_URL=$STORE ;;
esac

# 1. import rate
imp=$("$work/warden" import "$SYNTHEA" | tail -1)
echo "import: $imp" >&2
import_rate=$(sed -E 's/.*\(([0-9]+) resources\/s\).*/\1/' <<<"$imp")

"$work/warden" serve 2>"$work/serve.log" &
wpid=$!; pids+=($wpid)
CA=$work/data/pki/ca.pem
B=https://127.0.0.1:18443/fhir
for i in $(seq 100); do curl -sf --cacert "$CA" https://127.0.0.1:18443/healthz >/dev/null && break; sleep 0.2; done

# A backend client, registered with the CLI while the server runs.
"$work/backendtoken" -gen "$work"
cid=$("$work/warden" clients add --type backend --name bench --scopes 'system/*.cruds' --jwks-file "$work/jwks.json" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
token() { "$work/backendtoken" -issuer "$B" -ca "$CA" -client "$cid" -key "$work/key.pem" -scope 'system/*.cruds'; }
AUTH="Authorization: Bearer $(token)"

PAT=08bb5ad8-79b2-47ef-a0ad-81ef0b4ab2c3     # Harland DuBuque (smart-on-fhir sample)
CODE='http%3A%2F%2Floinc.org%7C72514-3'       # pain severity: 44 observations
curl -sf --cacert "$CA" -H "$AUTH" "$B/Patient/$PAT" >"$work/read.json"
curl -sf --cacert "$CA" -H "$AUTH" "$B/Observation?patient=$PAT&code=$CODE&_count=50" >"$work/search.json"
nsearch=$(grep -o '"fullUrl"' "$work/search.json" | wc -l)

cpu() { awk '{print $14+$15}' /proc/$1/stat; }
rss() { awk '/VmRSS/ {print $2/1024}' /proc/$1/status; }
tick=$(getconf CLK_TCK)

# run NAME URL [PID] [extra wrk args]: prints JSON with cpu (cores used)
run() {
  local name=$1 url=$2 pid=$3; shift 3
  local c0; c0=$(cpu "$pid")
  local res; res=$(wrk -t2 -c$CONC -d${DUR}s --latency -s "${LUA:-bench/wrk/report.lua}" "$@" "$url" | tail -1)
  local c1; c1=$(cpu "$pid")
  local cores; cores=$(awk -v a="$c0" -v b="$c1" -v t="$tick" -v d="$DUR" 'BEGIN{printf "%.2f", (b-a)/t/d}')
  echo "${res%\}},\"name\":\"$name\",\"server_cores\":$cores}" | tee -a "$out/results-$(printf %s "$STORE" | tr -c 'a-z0-9' '_' | cut -c1-20).jsonl"
}

bare() { # serve FILE on 9443 with warden's certificate
  "$work/bare" -addr 127.0.0.1:9443 -cert "$work/data/pki/server.pem" -key "$work/data/pki/server-key.pem" -body "$1" &
  bpid=$!; pids+=($bpid); sleep 0.5
}

bare "$work/read.json";   r_bare=$(run bare-read https://127.0.0.1:9443/ $bpid);   kill $bpid
"$work/open" -addr 127.0.0.1:9444 -cert "$work/data/pki/server.pem" -key "$work/data/pki/server-key.pem" \
  -db "$work/data/warden.db" -store "${WARDEN_STORE_URL:-}" -cursor-key "$work/data/keys/cursor.key" 2>"$work/open.log" &
opid=$!; pids+=($opid); sleep 1
O=https://127.0.0.1:9444/fhir
# The comparison means something only if both serve the same data.
cmp <(curl -sf --cacert "$CA" "$O/Patient/$PAT") "$work/read.json" >/dev/null || { echo "openserver does not serve the same data" >&2; exit 1; }
r_oread=$(run open-read "$O/Patient/$PAT" $opid)
AUTH="Authorization: Bearer $(token)"
r_read=$(run read "$B/Patient/$PAT" $wpid -H "$AUTH")
bare "$work/search.json"; r_sbare=$(run bare-search https://127.0.0.1:9443/ $bpid); kill $bpid
r_osearch=$(run open-search "$O/Observation?patient=$PAT&code=$CODE&_count=50" $opid)
kill $opid
AUTH="Authorization: Bearer $(token)"
r_search=$(run search "$B/Observation?patient=$PAT&code=$CODE&_count=50" $wpid -H "$AUTH")
mem_read=$(rss $wpid) # serving the imported set: after the reads and searches

cat >"$work/obs.json" <<JSON
{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/$PAT"},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}
JSON
AUTH="Authorization: Bearer $(token)"
r_create=$(BODY=$work/obs.json LUA=bench/wrk/post.lua run create "$B/Observation" $wpid -H "$AUTH")

python3 - "$work/obs.json" "$work/tx.json" <<'PY'
import json, sys, uuid
obs = json.load(open(sys.argv[1]))
entries = [{"fullUrl": "urn:uuid:%s" % uuid.uuid4(), "resource": obs, "request": {"method": "POST", "url": "Observation"}} for _ in range(100)]
json.dump({"resourceType": "Bundle", "type": "transaction", "entry": entries}, open(sys.argv[2], "w"))
PY
AUTH="Authorization: Bearer $(token)"
r_tx=$(BODY=$work/tx.json LUA=bench/wrk/post.lua run transaction100 "$B" $wpid -H "$AUTH")
mem=$(rss $wpid) # right after 32 concurrent 100-entry transactions
sleep 5
mem_later=$(rss $wpid)

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
ratio() { python3 -c 'import sys; print("%.0f%%" % (100*float(sys.argv[1])/float(sys.argv[2])))' "$1" "$2"; }
echo
echo "store: $STORE; $(nproc) cores; wrk -t2 -c$CONC -d${DUR}s over TLS 1.3 keep-alive; $(date -u +%F)"
echo
echo "| benchmark | req/s | p50 ms | p99 ms | server CPU (cores) | vs bare server | vs enforcement off |"
echo "|---|---|---|---|---|---|---|"
for pair in "bare server, read bytes@$r_bare@@" "read by id, enforcement off@$r_oread@$r_bare@" "read by id@$r_read@$r_bare@$r_oread" \
  "bare server, search bytes@$r_sbare@@" "search, enforcement off@$r_osearch@$r_sbare@" "Observation?patient&code&_count=50 ($nsearch hits)@$r_search@$r_sbare@$r_osearch" \
  "create Observation@$r_create@@" "transaction, 100 entries@$r_tx@@"; do
  IFS=@ read -r label res base open <<<"$pair"
  rel=""; [ -n "$base" ] && rel=$(ratio "$(field "$res" rps)" "$(field "$base" rps)")
  orel=""; [ -n "$open" ] && orel=$(ratio "$(field "$res" rps)" "$(field "$open" rps)")
  echo "| $label | $(field "$res" rps) | $(field "$res" p50_ms) | $(field "$res" p99_ms) | $(field "$res" server_cores) | $rel | $orel |"
done
echo
echo "import of $SYNTHEA: $import_rate resources/s; RSS after the reads and searches: ${mem_read} MB; right after the transactions: ${mem} MB; 5 s later: ${mem_later} MB"
