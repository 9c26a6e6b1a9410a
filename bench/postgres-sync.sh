#!/usr/bin/env bash
# pingpong on a primary with a synchronous standby (as the HA mode runs:
# every commit waits for the standby), side by side with the usual
# solution on the same pair, one UPDATE … RETURNING per request (pgbench
# -M prepared), in one run, in alternating rounds:
#   1. 50 connections: pingpong's requests/s (wrk) / pgbench's tps
#   2. one connection: pingpong's p50 latency (wrk --latency) / pgbench's
#      p50 (its per-transaction log, -l)
# Prints a table of medians and their ratios, with the machine.
# Usage: bench/postgres-sync.sh   (needs wrk and PostgreSQL's server;
#        ROUNDS (default 5), DURATION seconds per run (default 5))
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-5}
PRIMARY_PORT=5591 STANDBY_PORT=5592 PP_PORT=3991
step() { printf '==> %s\n' "$*" >&2; }
command -v wrk >/dev/null || { step "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
PG_BIN=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1)
[[ -n $PG_BIN ]] || { echo "bench/postgres-sync.sh: PostgreSQL's server is not installed (apt-get install postgresql)" >&2; exit 1; }
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

work=$(mktemp -d /tmp/pg-sync-bench.XXXXXX)
chmod 0755 "$work"
[[ $(id -u) == 0 ]] && chown postgres:postgres "$work"
pids=()
cleanup() {
  kill ${pids[@]+"${pids[@]}"} 2>/dev/null || true
  for dir in "$work/standby" "$work/primary"; do
    [[ -f $dir/postmaster.pid ]] && as_postgres "$PG_BIN/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT

step "a primary and a synchronous standby (synchronous_standby_names = '*'), on this disk"
as_postgres "$PG_BIN/initdb" -D "$work/primary" -U postgres --auth=trust >/dev/null
as_postgres sh -c "echo \"synchronous_standby_names = '*'\" >>'$work/primary/postgresql.conf'"
as_postgres "$PG_BIN/pg_ctl" -D "$work/primary" -w -l "$work/primary.log" \
  -o "-p $PRIMARY_PORT -k $work -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$work/standby" -X stream -R >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$work/standby" -w -l "$work/standby.log" \
  -o "-p $STANDBY_PORT -k $work -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null ||
  { tail -n 5 "$work/standby.log" >&2; exit 1; }
for _ in $(seq 100); do
  state=$(as_postgres "$PG_BIN/psql" -h "$work" -p "$PRIMARY_PORT" -U postgres -Atc "SELECT sync_state FROM pg_stat_replication" 2>/dev/null || true)
  [[ $state == sync ]] && break
  sleep 0.1
done
[[ $state == sync ]] || { echo "bench/postgres-sync.sh: the standby is not synchronous ($state)" >&2; exit 1; }

step "cargo build --release; pingpong on the primary"
cargo build --release --quiet --bin pingpong
bin=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
DATABASE_URL=postgres://postgres@127.0.0.1:$PRIMARY_PORT/postgres PORT=$PP_PORT RUST_LOG=warn "$bin/pingpong" & pids+=($!)
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PP_PORT/readyz" && break; sleep 0.1; done
ping=http://127.0.0.1:$PP_PORT/pingpong
echo 'UPDATE pingpong_counter SET count = count + 1 WHERE id = 1 RETURNING count;' >"$work/update.sql"

pgbench() { # CLIENTS [pgbench options…]
  local clients=$1
  shift
  (cd "$work" && "$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$((clients < 2 ? 1 : 2))" -T "$DURATION" \
    -f "$work/update.sql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres "$@" postgres 2>/dev/null)
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# wrk's "50%" latency line in µs (it prints us, ms or s).
wrk_p50_us() {
  wrk -t1 -c1 -d"${DURATION}s" --latency "$ping" | awk '$1 == "50%" {
    v = $2; if (v ~ /us$/) { sub(/us/, "", v); print v } else if (v ~ /ms$/) { sub(/ms/, "", v); print v * 1000 } else { sub(/s/, "", v); print v * 1000000 } }'
}
# pgbench's own p50 over one client: its per-transaction log (-l), the
# third field in µs.
pgbench_p50_us() {
  rm -f "$work"/pgbench_log.*
  pgbench 1 -l --log-prefix="$work/pgbench_log" >/dev/null
  cat "$work"/pgbench_log.* | awk '{print $3}' | median
}

: >"$work/pp50" && : >"$work/pgb50" && : >"$work/pp1" && : >"$work/pgb1"
for round in $(seq "$ROUNDS"); do
  step "round $round of $ROUNDS"
  wrk -t2 -c50 -d"${DURATION}s" "$ping" | awk '/Requests\/sec/ {print $2}' >>"$work/pp50"
  pgbench 50 | awk '/^tps = / {print $3; exit}' >>"$work/pgb50"
  wrk_p50_us >>"$work/pp1"
  pgbench_p50_us >>"$work/pgb1"
done

pp50=$(median <"$work/pp50") pgb50=$(median <"$work/pgb50") pp1=$(median <"$work/pp1") pgb1=$(median <"$work/pgb1")
echo
echo "bench/postgres-sync.sh, $(date -u '+%F %H:%M UTC'), $(nproc) cores, $(uname -r), $("$PG_BIN/postgres" --version)"
echo "primary + synchronous standby on one machine; medians of $ROUNDS alternating rounds of ${DURATION} s"
echo
printf '| %-46s | %12s | %12s | %8s |\n' "measure" "pingpong" "pgbench" "ratio"
printf '| %-46s | %12s | %12s | %8s |\n' "---" "---:" "---:" "---:"
printf '| %-46s | %12.0f | %12.0f | %7.2fx |\n' "50 connections, requests/s (higher is better)" "$pp50" "$pgb50" "$(awk -v a="$pp50" -v b="$pgb50" 'BEGIN { print a / b }')"
printf '| %-46s | %12.0f | %12.0f | %7.2fx |\n' "1 connection, p50 latency µs (lower is better)" "$pp1" "$pgb1" "$(awk -v a="$pp1" -v b="$pgb1" 'BEGIN { print a / b }')"
echo
echo "rounds: pingpong 50: $(tr '\n' ' ' <"$work/pp50"); pgbench 50: $(tr '\n' ' ' <"$work/pgb50")"
echo "        pingpong 1 (µs): $(tr '\n' ' ' <"$work/pp1"); pgbench 1 (µs): $(tr '\n' ' ' <"$work/pgb1")"
