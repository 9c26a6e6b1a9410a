#!/usr/bin/env bash
# Runs the whole system on this machine, no cluster: pingpong, the log-output
# writer and reader, each on a port of its own.
# Usage: ./run-local.sh [--postgres]      (Ctrl-C stops them all)
#   (default)   the file mode: all three share ./files/, as the pod volume
#   --postgres  the PostgreSQL mode: pingpong keeps the count in PostgreSQL
#               and the writer asks pingpong over HTTP. The database is
#               $DATABASE_URL if set; otherwise a local PostgreSQL is started
#               with its data in $LOCAL_PG_DATA (default ./files/postgres/),
#               trusting connections from this machine only, and stopped at
#               the end. It needs PostgreSQL's server: Debian/Ubuntu
#               `apt-get install postgresql`, macOS `brew install
#               postgresql@17` (found where Homebrew keeps it, off PATH).
# Ports, if one is taken (each a variable, default in brackets):
#   PINGPONG_PORT (3000)  READER_PORT (8080)  WRITER_METRICS_PORT (9090)
#   LOCAL_PG_PORT (55432, the local PostgreSQL of --postgres)
#   e.g. PINGPONG_PORT=3001 ./run-local.sh
# Start again from 0: stop it, then rm -rf files/
# (Written for bash 3.2 too, the one macOS ships.)
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi # `sh run-local.sh`
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '4,18s/^# \{0,1\}//p' "$0"; }
die() { echo "run-local.sh: $*" >&2; exit 1; }

mode="file"
for arg in "$@"; do
  case $arg in
    --postgres) mode=postgres ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run-local.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

PINGPONG_PORT=${PINGPONG_PORT:-3000}
READER_PORT=${READER_PORT:-8080}
WRITER_METRICS_PORT=${WRITER_METRICS_PORT:-9090}
LOCAL_PG_PORT=${LOCAL_PG_PORT:-55432}
LOCAL_PG_DATA=${LOCAL_PG_DATA:-files/postgres}
[[ $LOCAL_PG_DATA == /* ]] || LOCAL_PG_DATA=$PWD/$LOCAL_PG_DATA
export COUNTER_FILE=${COUNTER_FILE:-files/pingpong_counter.txt}
export LOG_FILE=${LOG_FILE:-files/output.log}

# Every port this run listens on, as "VARIABLE PORT" lines.
ports="PINGPONG_PORT $PINGPONG_PORT
READER_PORT $READER_PORT
WRITER_METRICS_PORT $WRITER_METRICS_PORT"
[[ $mode == postgres && -z ${DATABASE_URL:-} ]] && ports="$ports
LOCAL_PG_PORT $LOCAL_PG_PORT"

# Who listens on a port, if this machine can tell (lsof on macOS, ss on Linux).
listener() {
  local who=""
  if command -v lsof >/dev/null; then
    who=$(lsof -nP -iTCP:"$1" -sTCP:LISTEN 2>/dev/null | awk 'NR == 2 { print $1 " (pid " $2 ")" }')
  elif command -v ss >/dev/null; then
    who=$(ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1)
  fi
  echo "${who:-another program (another ./run-local.sh?)}"
}

# Every port a number, none used twice, none taken: said before anything
# starts, naming the variable that moves it.
seen=" "
while read -r var port; do
  if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "$var must be a port number from 1 to 65535, got '$port'"
  fi
  [[ $seen != *" $port "* ]] || die "$var is $port, a port another of the variables already names; give each its own"
  seen="$seen$port "
  # Something answers there already (a connection to it succeeds)?
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port ($var) is taken by $(listener "$port"); stop it, or move this one: $var=$((port + 1)) ./run-local.sh${1:+ $*}"
  fi
done <<EOF
$ports
EOF

names=() pids=() pg_bin="" pg_data="" pg_socket="" stopped=no
stop() {
  [[ $stopped == no ]] || return 0
  stopped=yes
  # A second Ctrl-C (or a signal to the whole group) must not cut the
  # stopping short: the database would be left running.
  trap '' INT TERM
  echo
  echo "==> stopping"
  # (${pids[@]+…}: an empty array is "unbound" to bash before 4.4, macOS's 3.2 included)
  kill -TERM ${pids[@]+"${pids[@]}"} 2>/dev/null || true
  wait ${pids[@]+"${pids[@]}"} 2>/dev/null || true
  if [[ -n $pg_data ]]; then as_owner "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null || true; fi
  if [[ -n $pg_socket ]]; then rm -rf "$pg_socket"; fi
}
trap 'stop; exit 0' INT TERM
trap 'status=$?; stop; exit $status' EXIT

# PostgreSQL's own programs, the newest found: Debian keeps them under
# /usr/lib/postgresql/VERSION/bin, Homebrew's postgresql@N is keg-only (not
# on PATH) under $(brew --prefix)/opt/postgresql@N/bin, Postgres.app under
# /Applications; elsewhere they are on PATH.
find_pg_bin() {
  local dir version best="" best_version=-1 brew_prefix=""
  command -v brew >/dev/null && brew_prefix=$(brew --prefix 2>/dev/null || true)
  for dir in /usr/lib/postgresql/*/bin ${brew_prefix:+"$brew_prefix"/opt/postgresql@*/bin} \
    /opt/homebrew/opt/postgresql@*/bin /usr/local/opt/postgresql@*/bin; do
    [[ -x $dir/initdb && -x $dir/pg_ctl ]] || continue
    version=$(echo "$dir" | sed -n 's/.*postgresql[@/]\([0-9][0-9]*\).*/\1/p')
    if ((${version:-0} > best_version)); then best=$dir best_version=${version:-0}; fi
  done
  for dir in "$best" /Applications/Postgres.app/Contents/Versions/latest/bin \
    "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"; do
    if [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]]; then echo "$dir"; return 0; fi
  done
  return 1
}
# The server refuses to run as root: as root, run it as the postgres user.
as_owner() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# What to type to look inside the database.
psql_hint=""

if [[ $mode == postgres && -z ${DATABASE_URL:-} ]]; then
  pg_bin=$(find_pg_bin) ||
    die "--postgres: PostgreSQL's server is not installed (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@17), or set DATABASE_URL to a database of yours"
  data=$LOCAL_PG_DATA
  mkdir -p "$data"
  if [[ $(id -u) == 0 ]]; then
    chown postgres:postgres "$data"
    runuser -u postgres -- test -w "$data" ||
      die "as root, PostgreSQL runs as the user postgres, which cannot reach $data (a directory above it is closed to other users): run ./run-local.sh as yourself, or set DATABASE_URL"
  fi
  if [[ ! -f $data/PG_VERSION ]]; then
    echo "==> a local PostgreSQL in $data ($("$pg_bin/postgres" --version))"
    as_owner "$pg_bin/initdb" -D "$data" -U pingpong --auth=trust -E UTF8 >/dev/null ||
      die "initdb in $data failed (see above)"
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$data/pg_hba.conf"
  fi
  # Its socket in a short directory of its own: a Unix socket's path has a
  # limit (107 bytes on Linux, 103 on macOS) that a checkout's path can pass.
  pg_socket=$(mktemp -d /tmp/pingpong-pg.XXXXXX)
  [[ $(id -u) == 0 ]] && chown postgres:postgres "$pg_socket"
  echo "==> starting it on 127.0.0.1:$LOCAL_PG_PORT"
  # pg_ctl passes -o to a shell: the socket's path quoted there.
  as_owner "$pg_bin/pg_ctl" -D "$data" -w -l "$data/server.log" \
    -o "-p $LOCAL_PG_PORT -k '$pg_socket' -c listen_addresses=127.0.0.1" start >/dev/null || {
    tail -n 5 "$data/server.log" >&2 || true
    die "PostgreSQL did not start (its log, above: $data/server.log)"
  }
  pg_data=$data
  psql_local=("$pg_bin/psql" -X -q -h 127.0.0.1 -p "$LOCAL_PG_PORT" -U pingpong)
  "${psql_local[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'pingpong'" | grep -q 1 ||
    "${psql_local[@]}" -d postgres -c "CREATE DATABASE pingpong" ||
    die "could not create the database pingpong (see above)"
  export DATABASE_URL=postgres://pingpong@127.0.0.1:$LOCAL_PG_PORT/pingpong
  psql=psql
  command -v psql >/dev/null || psql="'$pg_bin/psql'"
  psql_hint="$psql -h 127.0.0.1 -p $LOCAL_PG_PORT -U pingpong pingpong   # the count: TABLE pingpong_counter;"
fi
# DATABASE_URL as it may be shown: without its password.
# shellcheck disable=SC2001 # (a regular expression: bash's ${//} has none)
shown_url=$(echo "${DATABASE_URL:-}" | sed 's#\(://[^:/@]*\):[^@]*@#\1:***@#')
[[ -n $psql_hint || $mode != postgres ]] || psql_hint="psql '$shown_url'   # the count: TABLE pingpong_counter;"

echo "==> building (cargo build --release; the first build takes a few minutes)"
cargo build --release --quiet --bin pingpong --bin log-output
# Where cargo put them: target/, or CARGO_TARGET_DIR, or a build.target-dir setting.
bin=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release

# start NAME VARIABLE COMMAND…: in the background, remembered for stopping.
start() {
  local name=$1
  shift
  "$@" &
  names+=("$name") pids+=($!)
}
# none_exited WHEN AFTER: if one of them has exited, says which, with its
# status, and stops the others.
none_exited() {
  local i status
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null && continue
    status=0
    wait "${pids[$i]}" || status=$?
    die "${names[$i]} exited$1 (status $status)$2"
  done
}
# ready NAME URL: waits (10 s at most) until URL answers 200. A process that
# exits meanwhile (its one-line error is above) fails the start at once.
ready() {
  local name=$1 url=$2
  for _ in $(seq 100); do
    curl -fs -o /dev/null --max-time 1 "$url" && return 0
    none_exited " at once" "; its error is the line above"
    sleep 0.1
  done
  die "$name is not ready after 10 s: $(curl -s --max-time 1 "$url" || echo "no answer at $url")"
}

if [[ $mode == postgres ]]; then
  echo "==> pingpong on $shown_url; the writer asks it over HTTP"
  start pingpong env PORT="$PINGPONG_PORT" "$bin/pingpong"
else
  start pingpong env -u DATABASE_URL PORT="$PINGPONG_PORT" "$bin/pingpong"
fi
start reader env PORT="$READER_PORT" "$bin/log-output" reader
# The writer after pingpong is ready: in the PostgreSQL mode it asks
# pingpong for the count at once.
ready pingpong "http://127.0.0.1:$PINGPONG_PORT/readyz"
if [[ $mode == postgres ]]; then
  start writer env PINGPONG_URL="http://127.0.0.1:$PINGPONG_PORT" METRICS_PORT="$WRITER_METRICS_PORT" \
    "$bin/log-output" writer
else
  start writer env METRICS_PORT="$WRITER_METRICS_PORT" "$bin/log-output" writer
fi
ready reader "http://127.0.0.1:$READER_PORT/readyz"
ready writer "http://127.0.0.1:$WRITER_METRICS_PORT/healthz"

where="the counter and the log: $COUNTER_FILE, $LOG_FILE"
[[ $mode == postgres ]] && where="the count is in PostgreSQL ($shown_url); the log: $LOG_FILE"
cat <<MSG

==> running; $where
    curl localhost:$PINGPONG_PORT/pingpong      # pong N, counted durably
    curl localhost:$PINGPONG_PORT/pings         # the count, without counting
    curl localhost:$READER_PORT/                # the writer's latest entry (it writes every 5 s)
    curl 'localhost:$READER_PORT/log?tail=5'    # the last five entries
    curl localhost:$PINGPONG_PORT/metrics       # Prometheus metrics: pingpong,
    curl localhost:$WRITER_METRICS_PORT/metrics       #   the writer,
    curl localhost:$READER_PORT/metrics         #   the reader
MSG
[[ -z $psql_hint ]] || echo "    $psql_hint"
cat <<MSG
    Ctrl-C stops them all; then rm -rf files/ starts again from 0.

MSG

# Until Ctrl-C, or until one of them exits by itself: then the others stop too.
while :; do
  none_exited "" "; stopping the others"
  sleep 0.5
done
