#!/usr/bin/env bash
# What the gateway's guard costs a read (issue: gateway protections): the
# request limits and the inline abuse detection together.
# Usage:
#   bench/limits.sh [seconds] [rounds] [memory|redis]
# Builds warden, imports the shared Synthea patients, and runs two servers
# of the same build on the same data, taking turns: one with the request
# limits on (every request charges its peer, its caller and a concurrency
# slot, and the patients it discloses; the limits set so high that wrk, one
# address, is never refused) and the abuse detection on (its defaults),
# one with limits.disabled and detection.disabled. With "redis" the
# counters live in a redis-server started here on a free loopback port.
# wrk at concurrency 32 over TLS keep-alive reads Patient/{id} with a
# backend-services token, alternating between the two servers for ROUNDS
# rounds; it reports req/s and p50 of each and their ratio. PROFILE=1
# also writes a CPU profile of the server with limits to bench/out.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
ROUNDS=${2:-2}
STORE=${3:-memory}
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
export WARDEN_DATA_DIR=$work/data WARDEN_LOG_LEVEL=warn
"$work/warden" import "$SYNTHEA" >/dev/null

# Limits far above what wrk can do here, so the guard does all its work
# and refuses nothing.
cat >"$work/limits.yaml" <<'YAML'
per_address: {rate: 50000000/min, burst: 1000000}
per_certificate: {rate: 50000000/min, burst: 1000000}
classes:
  backend:
    client: {rate: 50000000/min, burst: 1000000}
    concurrency: 1024
    distinct_patients:
      client: {count: 100000, window: 1h}
YAML
limits_store=memory
if [ "$STORE" = redis ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null & pids+=($!)
  limits_store=redis://127.0.0.1:$port/0
  sleep 0.5
fi

B=https://127.0.0.1:18443/fhir
CA=$work/data/pki/ca.pem
# The two servers share the data directory (one database, one audit
# trail), so they take turns: each round starts one, measures it, stops it.
server=
start() { # on|off
  if [ "$1" = on ]; then
    WARDEN_ADMIN_PPROF=true WARDEN_LIMITS_FILE=$work/limits.yaml WARDEN_LIMITS_STORE=$limits_store \
      WARDEN_SERVER_ADDR=127.0.0.1:18443 WARDEN_ADMIN_ADDR=127.0.0.1:19464 "$work/warden" serve 2>>"$work/serve.log" &
  else
    WARDEN_LIMITS_DISABLED=true WARDEN_DETECTION_DISABLED=true WARDEN_SERVER_ADDR=127.0.0.1:18443 WARDEN_ADMIN_ADDR=127.0.0.1:19464 "$work/warden" serve 2>>"$work/serve.log" &
  fi
  server=$!; pids+=($server)
  for i in $(seq 150); do curl -sf --cacert "$CA" https://127.0.0.1:18443/healthz >/dev/null && return; sleep 0.2; done
  cat "$work/serve.log" >&2; exit 1
}
stop() { kill -INT "$server"; wait "$server" 2>/dev/null || true; }

start on
"$work/backendtoken" -gen "$work"
cid=$(WARDEN_ADMIN_ADDR=127.0.0.1:19464 "$work/warden" clients add --type backend --name bench --scopes 'system/*.rs' --jwks-file "$work/jwks.json" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
AUTH="Authorization: Bearer $("$work/backendtoken" -issuer "$B" -ca "$CA" -client "$cid" -key "$work/key.pem" -scope 'system/*.rs')"
PAT=$(curl -sf --cacert "$CA" -H "$AUTH" "$B/Patient?_count=1&_elements=id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["entry"][0]["resource"]["id"])')
curl -sf --cacert "$CA" -H "$AUTH" -D - -o /dev/null "$B/Patient/$PAT" | grep -qi '^ratelimit' || { echo "the limits are not on" >&2; exit 1; }
stop

run() { # NAME
  wrk -t2 -c$CONC -d${DUR}s --latency -s bench/wrk/report.lua -H "$AUTH" "$B/Patient/$PAT" | tail -1 |
    sed "s/}\$/,\"name\":\"$1\"}/" | tee -a "$out/limits.jsonl"
}
res=()
for r in $(seq "$ROUNDS"); do
  start on
  if [ "${PROFILE:-}" = 1 ] && [ "$r" = 1 ]; then
    curl -s "http://127.0.0.1:19464/debug/pprof/profile?seconds=$((DUR - 2))" >"$out/limits-on.pprof" &
  fi
  res+=("$(run limits-on)")
  stop
  start off
  res+=("$(run limits-off)")
  stop
done
python3 - "$STORE" "${res[@]}" <<'PY'
import json, sys, statistics as st
store = sys.argv[1]
rs = [json.loads(a) for a in sys.argv[2:]]
for r in rs: assert r["errors"] == 0 and r["non2xx"] == 0, r
on = [r for r in rs if r["name"] == "limits-on"]; off = [r for r in rs if r["name"] == "limits-off"]
m = lambda xs, k: st.median(x[k] for x in xs)
print("| server | req/s | p50 ms | p99 ms |\n|---|---|---|---|")
for name, xs in (("limits on (%s)" % store, on), ("limits off", off)):
    print("| %s | %.0f | %.2f | %.2f |" % (name, m(xs, "rps"), m(xs, "p50_ms"), m(xs, "p99_ms")))
print("\nreads with the guard on (limits and detection): %.0f%% of the throughput with both off; added p50: %.2f ms" % (100*m(on,"rps")/m(off,"rps"), m(on,"p50_ms")-m(off,"p50_ms")))
PY
