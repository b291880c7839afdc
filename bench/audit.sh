#!/usr/bin/env bash
# What the audit trail costs (issue: tamper-evident audit trail). Usage:
#   [TARGET=read|search] [STORE=sqlite|postgres] bench/audit.sh [seconds] [rounds]
# Builds warden, imports the shared Synthea patients, and runs two servers
# of the same build, each on its own copy of the data: one with the audit
# trail (every request's AuditEvent durable in the journal before its
# response, sequenced into the transparency log and indexed for
# AuditEvent search in the background), one with audit.disabled. wrk at
# concurrency 32 over TLS keep-alive reads Patient/{id} with a
# backend-services token, alternating between the two servers for ROUNDS
# rounds so that machine noise hits both alike (the one not measured is
# stopped); then reports req/s, p50 and server CPU per request of each,
# their ratio, the p50 difference and the CPU the trail adds per request;
# the indexing the audited server still owed after its rounds, its CPU
# per request all told, and the sustained throughput that allows on this
# machine's cores; and the audit log's lag (how long the slowest event
# waited for the log).
# STORE=postgres runs both on a throwaway PostgreSQL cluster
# (bench/pg.sh), each on its own database; the CPU columns then count
# Warden's process only, not PostgreSQL's.
# PROFILE=1 also writes CPU and allocation profiles of both servers to
# bench/out, and a CPU profile of the audited server's catch-up.
# BENCH_DIR=DIR puts the servers' data (and the audit trail) under DIR
# instead of /tmp: to measure the file system a deployment will use.
# PERF=1 records both servers' first round with perf (kernel time
# included, which Go's profiler undercounts) to bench/out/audit-*.perf.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
ROUNDS=${2:-2}
CONC=32
SYNTHEA=${SYNTHEA:-../shared/data/synthea}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
work=$(mktemp -d "${BENCH_DIR:-/tmp}/wardenbench.XXXX")
out=bench/out; mkdir -p "$out"
pids=()
pgstop() { :; }
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pgstop; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/warden" ./cmd/warden
go build -o "$work/backendtoken" ./bench/backendtoken
export WARDEN_DATA_DIR=$work/data WARDEN_LOG_LEVEL=warn
# Request limits would throttle wrk (one address); this compares audit on/off.
export WARDEN_LIMITS_DISABLED=true WARDEN_DETECTION_DISABLED=true
STORE_OFF=
if [ "${STORE:-sqlite}" = postgres ]; then
  . bench/pg.sh; pg_start "$work"
  pg_sql "CREATE DATABASE won"
  export WARDEN_STORE_URL=$(PG_URL won); STORE_OFF=$(PG_URL woff)
fi
"$work/warden" import "$SYNTHEA" >/dev/null

# Each server has a copy of the imported data, so that stopping one
# (below) never leaves the other waiting on a database lock it holds.
cp -a "$work/data" "$work/data-off"
[ -z "$STORE_OFF" ] || pg_sql "CREATE DATABASE woff TEMPLATE won"
B=https://127.0.0.1:18443/fhir
WARDEN_SERVER_ADDR=127.0.0.1:18443 WARDEN_ADMIN_ADDR=127.0.0.1:19464 WARDEN_ADMIN_PPROF=true \
  "$work/warden" serve 2>"$work/on.log" & on=$!; pids+=($on)
CA=$work/data/pki/ca.pem
for i in $(seq 100); do curl -sf --cacert "$CA" https://127.0.0.1:18443/healthz >/dev/null && break; sleep 0.2; done
# The same build, audit off, on its own copy of the data (and the same
# development CA, which the first start made).
cp -a "$work/data/pki" "$work/data-off/"
WARDEN_DATA_DIR=$work/data-off WARDEN_STORE_URL=${STORE_OFF:-${WARDEN_STORE_URL:-}} WARDEN_SERVER_ADDR=127.0.0.1:18444 WARDEN_ADMIN_ADDR=127.0.0.1:19465 WARDEN_ADMIN_PPROF=true WARDEN_AUDIT_DISABLED=true \
  "$work/warden" serve 2>"$work/off.log" & off=$!; pids+=($off)
for i in $(seq 100); do curl -sf --cacert "$CA" https://127.0.0.1:18444/healthz >/dev/null && break; sleep 0.2; done

"$work/backendtoken" -gen "$work"
# token DATA_DIR ADMIN_PORT BASE STORE_URL: an access token from that server.
token() {
  local cid
  cid=$(WARDEN_DATA_DIR=$1 WARDEN_ADMIN_ADDR=127.0.0.1:$2 WARDEN_STORE_URL=$4 "$work/warden" clients add --type backend --name bench --scopes 'system/*.rs' --jwks-file "$work/jwks.json" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
  echo "Authorization: Bearer $("$work/backendtoken" -issuer "$3" -ca "$CA" -client "$cid" -key "$work/key.pem" -scope 'system/*.rs')"
}
AUTH_ON=$(token "$work/data" 19464 "$B" "${WARDEN_STORE_URL:-}")
AUTH_OFF=$(token "$work/data-off" 19465 https://127.0.0.1:18444/fhir "${STORE_OFF:-${WARDEN_STORE_URL:-}}")
PAT=08bb5ad8-79b2-47ef-a0ad-81ef0b4ab2c3
# TARGET=search measures the patient+code search (44 matches) instead of the read.
TARGET_PATH="Patient/$PAT"
[ "${TARGET:-read}" = search ] && TARGET_PATH="Observation?patient=$PAT&code=http%3A%2F%2Floinc.org%7C72514-3&_count=50"
cmp <(curl -sf --cacert "$CA" -H "$AUTH_ON" "$B/Patient/$PAT") <(curl -sf --cacert "$CA" -H "$AUTH_OFF" "https://127.0.0.1:18444/fhir/Patient/$PAT") >/dev/null ||
  { echo "the two servers do not answer alike" >&2; exit 1; }

# cpu PID: the CPU time so far (user + system, in clock ticks) of the
# process and its children (the journal's fsync helper).
cpu() { local t=0 p; for p in "$1" $(pgrep -P "$1" 2>/dev/null); do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo "$t"; }
TICK=$(getconf CLK_TCK)
run() { # NAME PORT PID AUTH
  local before after
  # Resumed from SIGSTOP: answering again before the load starts.
  for i in $(seq 50); do curl -sf -m 2 --cacert "$CA" "https://127.0.0.1:$2/healthz" >/dev/null && break; sleep 0.1; done
  before=$(cpu "$3")
  wrk -t2 -c$CONC -d${DUR}s --latency -s bench/wrk/report.lua -H "$4" "https://127.0.0.1:$2/fhir/$TARGET_PATH" | tail -1 >"$work/run.json"
  after=$(cpu "$3")
  # The server's CPU per request, in µs: what the ratio is made of on a
  # machine where server and load generator share the cores.
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["name"]=sys.argv[2]; r["cpu_us"]=(int(sys.argv[4])-int(sys.argv[3]))/int(sys.argv[5])*1e6/max(r["requests"],1); print(json.dumps(r))' \
    "$work/run.json" "$1" "$before" "$after" "$TICK" | tee -a "$out/audit.jsonl"
}
# drain waits (up to 5 s) until the audited server has sequenced every
# event it journaled into the transparency log, so that the events of a
# round's last moments do not wait out the other server's round stopped
# (which the log-lag figure below would count). The CPU of that last
# sequencing (less than one batch per round) is left out of the rounds.
drain() {
  local i m
  for i in $(seq 50); do
    m=$(curl -s http://127.0.0.1:19464/metrics)
    awk '/^warden_audit_journal_entries /{e=$2} /^warden_audit_log_lag_seconds_count /{c=$2} END{exit !(e>0 && c>=e)}' <<<"$m" && return
    sleep 0.1
  done
}
# Only the server being measured runs: the other is stopped (SIGSTOP), so
# that the audited server's background work (the log, the searchable
# copy's indexing) neither slows the unaudited one's rounds nor escapes
# its own CPU count.
kill -STOP "$off"
res=()
for r in $(seq "$ROUNDS"); do
  if [ "${PROFILE:-}" = 1 ] && [ "$r" = 1 ]; then
    curl -s "http://127.0.0.1:19464/debug/pprof/profile?seconds=$((DUR - 2))" >"$out/audit-on.pprof" &
  fi
  if [ "${PERF:-}" = 1 ] && [ "$r" = 1 ]; then
    perf record -q -F 1999 -g -p "$on" -o "$out/audit-on.perf" -- sleep $((DUR - 2)) 2>/dev/null &
  fi
  res+=("$(run audit-on 18443 "$on" "$AUTH_ON")")
  drain
  kill -STOP "$on"; kill -CONT "$off"
  if [ "${PROFILE:-}" = 1 ] && [ "$r" = 1 ]; then
    curl -s "http://127.0.0.1:19465/debug/pprof/profile?seconds=$((DUR - 2))" >"$out/audit-off.pprof" &
  fi
  if [ "${PERF:-}" = 1 ] && [ "$r" = 1 ]; then
    perf record -q -F 1999 -g -p "$off" -o "$out/audit-off.perf" -- sleep $((DUR - 2)) 2>/dev/null &
  fi
  res+=("$(run audit-off 18444 "$off" "$AUTH_OFF")")
  kill -STOP "$off"; kill -CONT "$on"
done
# With PROFILE=1, what each server allocated over all its rounds.
if [ "${PROFILE:-}" = 1 ]; then
  kill -CONT "$off"
  curl -s http://127.0.0.1:19464/debug/pprof/allocs >"$out/audit-on.allocs.pprof"
  curl -s http://127.0.0.1:19465/debug/pprof/allocs >"$out/audit-off.allocs.pprof"
fi
# What the audited server still owes after its rounds: the events it
# journaled but has not indexed yet (audit.index_max_backlog lets that
# many wait). An AuditEvent search indexes them all first; the CPU that
# takes is the rest of what the rounds' requests cost. The search finds
# nothing, so that its own reading is not counted as indexing (a count
# reads every event, for the consent checks).
backlog=$(curl -s http://127.0.0.1:19464/metrics | awk '/^warden_audit_index_backlog /{print $2}')
before=$(cpu "$on")
if [ "${PROFILE:-}" = 1 ]; then
  curl -s "http://127.0.0.1:19464/debug/pprof/profile?seconds=4" >"$out/audit-catchup.pprof" &
fi
curl -sf -m 600 --cacert "$CA" -H "$AUTH_ON" "$B/AuditEvent?_id=no-such-event" >/dev/null
owed=$(( $(cpu "$on") - before ))
# How long events took to reach the transparency log (Prometheus histogram).
sleep 2
# What the trail keeps on disk per event: the journal, the transparency
# log's tiles and bundles, and the searchable copy's stores (Pebble files
# only; what is still in its memory tables is not counted).
entries=$(curl -s http://127.0.0.1:19464/metrics | awk '/^warden_audit_journal_entries /{print $2}')
commits=$(curl -s http://127.0.0.1:19464/metrics | awk '/^warden_audit_journal_commits_total /{print $2}')
readb=$(curl -s http://127.0.0.1:19464/metrics | awk '/^warden_audit_journal_read_bytes_total /{print $2}')
jsize=$(stat -c %s "$work/data/audit/journal/journal.log" 2>/dev/null || echo 0)
awk -v e="$entries" -v c="$commits" 'BEGIN{printf "\njournal: %d entries in %d group commits, %.1f per commit (the fsync is shared by them)\n", e, c, e/(c>0?c:1)}'
awk -v r="${readb:-0}" -v s="$jsize" 'BEGIN{if (s > 0) printf "journal read back: %.0f bytes for %d on file (%.1f times; the log sequencer and the indexer read it once each)\n", r, s, r/s}'
python3 - "$entries" "$work/data/audit" <<'PY'
import os, sys
n, root = float(sys.argv[1]), sys.argv[2]
def size(p):
    if os.path.isfile(p): return os.path.getsize(p)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs if os.path.isfile(os.path.join(d, f)))
parts = [(e, size(os.path.join(root, e))) for e in sorted(os.listdir(root))]
for sub in ("index",):
    p = os.path.join(root, sub)
    if os.path.isdir(p):
        parts += [(sub + "/" + e, size(os.path.join(p, e))) for e in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, e))]
print("\ntrail on disk, %d events:" % n + "".join(" %s %.0f B/event;" % (name, b / max(n, 1)) for name, b in parts))
PY
curl -s http://127.0.0.1:19464/metrics | python3 -c '
import sys, re
b = {}
for line in sys.stdin:
    m = re.match(r"warden_audit_log_lag_seconds_bucket\{le=\"([^\"]+)\"\} (\S+)", line)
    if m: b[float(m.group(1))] = float(m.group(2))
total = b.get(float("inf"), 0)
def q(p):
    for le in sorted(b):
        if b[le] >= p * total: return le
print("\naudit log lag: %d events; p50 <= %gs, p99 <= %gs (histogram bucket bounds)" % (total, q(0.5), q(0.99)))
'

python3 - "$backlog" "$owed" "$TICK" "$(nproc)" "${res[@]}" <<'PY'
import json, sys, statistics as st
backlog, owed_us = float(sys.argv[1]), int(sys.argv[2]) / int(sys.argv[3]) * 1e6
cores = int(sys.argv[4])
rs = [json.loads(a) for a in sys.argv[5:]]
on = [r for r in rs if r["name"] == "audit-on"]; off = [r for r in rs if r["name"] == "audit-off"]
for r in rs: assert r["errors"] == 0 and r["non2xx"] == 0, r
m = lambda xs, k: st.median(x[k] for x in xs)
print("| server | req/s | p50 ms | p99 ms | server CPU µs/request |\n|---|---|---|---|---|")
for name, xs in (("audit on", on), ("audit off", off)):
    print("| %s | %.0f | %.2f | %.2f | %.0f |" % (name, m(xs, "rps"), m(xs, "p50_ms"), m(xs, "p99_ms"), m(xs, "cpu_us")))
print("\naudited read throughput: %.0f%% of unaudited; added p50: %.2f ms; the trail's CPU: %.0f µs per request" %
      (100*m(on,"rps")/m(off,"rps"), m(on,"p50_ms")-m(off,"p50_ms"), m(on,"cpu_us")-m(off,"cpu_us")))
# The audited server's CPU per request with the indexing it still owed
# after its rounds, and the same for the unaudited one: the sustained
# cost of a request, from which the sustained ratio follows on a machine
# whose cores the load generator shares (its CPU per request as measured
# on the unaudited rounds: the cores left over ÷ req/s).
n = sum(r["requests"] for r in on)
full = (sum(r["cpu_us"] * r["requests"] for r in on) + owed_us) / n
wrk = max(cores * 1e6 / m(off, "rps") - m(off, "cpu_us"), 0)
print("after the rounds, %d events waited to be indexed: %.0f µs of CPU each; with them, audited CPU per request: %.0f µs, the trail's %.0f µs"
      % (backlog, owed_us / max(backlog, 1), full, full - m(off, "cpu_us")))
print("sustained audited throughput at that cost (%d cores, load generator %.0f µs per request): ~%.0f req/s, %.0f%% of unaudited"
      % (cores, wrk, cores * 1e6 / (full + wrk), 100 * (cores * 1e6 / (full + wrk)) / m(off, "rps")))
PY
