# Sourced by the benchmarks: pg_start DIR starts a throwaway PostgreSQL
# cluster in DIR on 127.0.0.1:55432 (installing PostgreSQL from Debian if
# it is missing), as scripts/test makes one, and defines pgstop and
# PG_URL DB (the URL of database DB on it).
pg_start() {
  local dir=$1
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$PGBIN" ] || { apt-get update -qq && apt-get install -y -qq postgresql; PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); }
  mkdir -p "$dir/pg" && chown postgres "$dir" "$dir/pg" && chmod 755 "$dir"
  runuser -u postgres -- "$PGBIN/initdb" -D "$dir/pg/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/pg/data" -w -l "$dir/pg/log" \
    -o "-p 55432 -k $dir/pg -c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=256MB" start >/dev/null
  PG_DIR=$dir
  pgstop() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DIR/pg/data" -m fast stop >/dev/null 2>&1 || true; }
}
PG_URL() { echo "postgres://postgres@127.0.0.1:55432/$1?sslmode=disable"; }
# pg_sql SQL: runs SQL on the throwaway cluster's postgres database.
pg_sql() { runuser -u postgres -- "$PGBIN/psql" -q -h "$PG_DIR/pg" -p 55432 -U postgres -d postgres -c "$1" >/dev/null; }
