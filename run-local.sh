#!/usr/bin/env bash
# Runs the whole system on this machine, no cluster: pingpong, the log-output
# writer and reader.
# Usage: ./run-local.sh [--postgres]      (Ctrl-C stops them all)
#   (default)   the file mode: all three share ./files/, as the pod volume
#   --postgres  the PostgreSQL mode: pingpong keeps the count in PostgreSQL
#               and the writer asks pingpong over HTTP. The database is
#               $DATABASE_URL if set; otherwise a local PostgreSQL is started
#               with its data in ./files/postgres/ (needs PostgreSQL's server:
#               Debian/Ubuntu `apt-get install postgresql`, macOS
#               `brew install postgresql@17`), trusting connections from this
#               machine only, and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")"

mode="file"
case ${1:-} in
  "") ;;
  --postgres) mode=postgres ;;
  -h | --help) sed -n '4,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) sed -n '4,12s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac

PINGPONG_PORT=${PINGPONG_PORT:-3000}
READER_PORT=${READER_PORT:-8080}
WRITER_METRICS_PORT=${WRITER_METRICS_PORT:-9090}
LOCAL_PG_PORT=${LOCAL_PG_PORT:-55432}
export COUNTER_FILE=${COUNTER_FILE:-files/pingpong_counter.txt}
export LOG_FILE=${LOG_FILE:-files/output.log}

die() { echo "run-local.sh: $*" >&2; exit 1; }

pids=() pg_data=""
stop() {
  # A second Ctrl-C (or a signal to the whole group) must not cut the
  # stopping short: the database would be left running.
  trap '' INT TERM
  trap - EXIT
  echo
  echo "==> stopping"
  # (${pids[@]+…}: an empty array is "unbound" to bash before 4.4, macOS's 3.2 included)
  kill -TERM ${pids[@]+"${pids[@]}"} 2>/dev/null || true
  wait ${pids[@]+"${pids[@]}"} 2>/dev/null || true
  if [[ -n $pg_data ]]; then as_owner "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null || true; fi
}
trap stop INT TERM EXIT

# PostgreSQL's own programs: Debian keeps them out of PATH, under
# /usr/lib/postgresql/VERSION/bin; elsewhere they are on PATH.
find_pg_bin() {
  local dir found=""
  for dir in /usr/lib/postgresql/*/bin; do [[ -x $dir/initdb ]] && found=$dir; done
  if [[ -n $found ]]; then echo "$found"; return; fi
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}
# The server refuses to run as root: as root, run it as the postgres user.
as_owner() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [[ $mode == postgres && -z ${DATABASE_URL:-} ]]; then
  pg_bin=$(find_pg_bin) ||
    die "--postgres: PostgreSQL's server is not installed (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@17), or set DATABASE_URL to a database of yours"
  pg_data=$PWD/files/postgres
  if [[ ! -f $pg_data/PG_VERSION ]]; then
    echo "==> a local PostgreSQL in files/postgres/ ($("$pg_bin/postgres" --version))"
    mkdir -p "$pg_data"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$pg_data"
    as_owner "$pg_bin/initdb" -D "$pg_data" -U pingpong --auth=trust -E UTF8 >/dev/null ||
      die "initdb in files/postgres/ failed (see above)"
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$pg_data/pg_hba.conf"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$pg_data/pg_hba.conf"
  fi
  echo "==> starting it on 127.0.0.1:$LOCAL_PG_PORT"
  as_owner "$pg_bin/pg_ctl" -D "$pg_data" -w -l "$pg_data/server.log" \
    -o "-p $LOCAL_PG_PORT -k $pg_data -c listen_addresses=127.0.0.1" start >/dev/null ||
    { pg_data=""; die "PostgreSQL did not start; its log: files/postgres/server.log"; }
  as_owner "$pg_bin/psql" -X -q -h "$pg_data" -p "$LOCAL_PG_PORT" -U pingpong -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'pingpong'" | grep -q 1 ||
    as_owner "$pg_bin/createdb" -h "$pg_data" -p "$LOCAL_PG_PORT" -U pingpong pingpong
  export DATABASE_URL=postgres://pingpong@127.0.0.1:$LOCAL_PG_PORT/pingpong
fi

echo "==> building (cargo build --release)"
cargo build --release --quiet --bin pingpong --bin log-output
# Where cargo put them: target/, or CARGO_TARGET_DIR, or a build.target-dir setting.
bin=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release

if [[ $mode == postgres ]]; then
  echo "==> pingpong on $DATABASE_URL; the writer asks it over HTTP"
  PORT=$PINGPONG_PORT "$bin/pingpong" & pids+=($!)
  PINGPONG_URL=http://127.0.0.1:$PINGPONG_PORT METRICS_PORT=$WRITER_METRICS_PORT "$bin/log-output" writer & pids+=($!)
else
  (unset DATABASE_URL; PORT=$PINGPONG_PORT exec "$bin/pingpong") & pids+=($!)
  METRICS_PORT=$WRITER_METRICS_PORT "$bin/log-output" writer & pids+=($!)
fi
PORT=$READER_PORT "$bin/log-output" reader & pids+=($!)

# Wait (with a deadline of 10 s) until all three answer; a process that could
# not start (port taken, say) has printed why: stop the others.
for url in "http://127.0.0.1:$PINGPONG_PORT/readyz" "http://127.0.0.1:$READER_PORT/readyz" \
  "http://127.0.0.1:$WRITER_METRICS_PORT/healthz"; do
  ok=no
  for _ in $(seq 100); do
    if curl -fs "$url" >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.1
  done
  [[ $ok == yes ]] || die "$url did not answer; see the error above"
done

where="the shared volume is ./files/"
[[ $mode == postgres ]] && where="the count is in PostgreSQL ($DATABASE_URL); the log in ./files/"
cat <<MSG

==> running; $where
    curl localhost:$PINGPONG_PORT/pingpong      # pong N, counted durably
    curl localhost:$PINGPONG_PORT/pings         # the count, without counting
    curl localhost:$READER_PORT/                # latest log entry
    curl 'localhost:$READER_PORT/log?tail=5'    # last five entries
    curl localhost:$PINGPONG_PORT/metrics       # Prometheus metrics: pingpong,
    curl localhost:$WRITER_METRICS_PORT/metrics       #   the writer,
    curl localhost:$READER_PORT/metrics         #   the reader
    Ctrl-C stops them all.

MSG
wait
