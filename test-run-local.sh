#!/usr/bin/env bash
# The README's first command, as a student meets it: ./run-local.sh started
# twice, on a taken port, with a child that dies at once, with a password in
# DATABASE_URL, and --postgres with a local PostgreSQL whose data lies under
# a path with spaces longer than a Unix socket's limit, run through a
# checkout path with spaces; stopped with Ctrl-C (SIGINT to its process
# group). Every run uses ports and files of its own (never ./files/).
# Usage: ./test-run-local.sh     (needs curl, python3; --postgres needs
#        PostgreSQL's server, which CI installs)
set -euo pipefail
cd "$(dirname "$0")"
set -m # each run in a process group of its own, as a terminal's job is: Ctrl-C reaches all of it

passed=0 failed=0
summary() { echo; echo "$passed passed, $failed failed"; }
trap 'cleanup; summary' EXIT
ok() { passed=$((passed + 1)); echo "  ok: $*"; }
fail() { failed=$((failed + 1)); echo "  FAILED: $*"; }
check() { # check NAME COMMAND…
  local name=$1
  shift
  echo "==> $name"
  if "$@"; then ok "$name"; else fail "$name"; fi
}

work=$(mktemp -d)
chmod 755 "$work" # the local PostgreSQL runs as the user postgres when we are root
runs=()
cleanup() {
  local pid
  for pid in ${runs[@]+"${runs[@]}"}; do kill -INT -- "-$pid" 2>/dev/null || true; done
  for pid in ${runs[@]+"${runs[@]}"}; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}

# The release build once, before anything is timed.
echo "==> cargo build --release (what ./run-local.sh builds)"
cargo build --release --quiet --bin pingpong --bin log-output

# A free port: the kernel's choice for a socket bound to port 0.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# launch NAME [VAR=VALUE…] -- ARGS…: ./run-local.sh in the background, its
# output in $work/NAME.out, its pid in $launched.
launch() {
  local name=$1 script=./run-local.sh
  shift
  local vars=()
  while [[ $1 != -- ]]; do vars+=("$1"); shift; done
  shift
  [[ -z ${SCRIPT:-} ]] || script=$SCRIPT
  env ${vars[@]+"${vars[@]}"} "$script" "$@" >"$work/$name.out" 2>&1 &
  launched=$!
  runs+=("$launched")
}
# until_running NAME PID: its banner within 60 s, or its end.
until_running() {
  for _ in $(seq 600); do
    grep -q '^==> running' "$work/$1.out" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# ends_within SECONDS PID: the run ends by itself within SECONDS; its status in $status.
ends_within() {
  for _ in $(seq $(($1 * 10))); do
    if ! kill -0 "$2" 2>/dev/null; then
      status=0
      wait "$2" || status=$?
      return 0
    fi
    sleep 0.1
  done
  return 1
}
show() { sed 's/^/      | /' "$work/$1.out"; }

# Ports and files for the first instance.
P1=$(free_port) P2=$(free_port) P3=$(free_port)
first_env=(PINGPONG_PORT="$P1" READER_PORT="$P2" WRITER_METRICS_PORT="$P3"
  COUNTER_FILE="$work/first/pingpong_counter.txt" LOG_FILE="$work/first/output.log")

help_and_options() {
  sh ./run-local.sh --help >"$work/help.out" 2>&1 || { show help; return 1; }
  for var in PINGPONG_PORT READER_PORT WRITER_METRICS_PORT LOCAL_PG_PORT "rm -rf files/"; do
    grep -q -- "$var" "$work/help.out" || { echo "    --help does not name $var"; return 1; }
  done
  local status=0
  ./run-local.sh --frobnicate >"$work/bad.out" 2>&1 || status=$?
  if [[ $status != 2 ]] || ! grep -q "unknown option '--frobnicate'" "$work/bad.out"; then show bad; return 1; fi
}
check "sh run-local.sh --help runs under bash and names the port variables; an unknown option says so (exit 2)" help_and_options

first=""
first_runs() {
  launch first "${first_env[@]}" --
  first=$launched
  until_running first "$first" || { show first; return 1; }
  [[ $(curl -fs "http://127.0.0.1:$P1/pingpong") == "pong 0" ]] || return 1
  [[ $(curl -fs "http://127.0.0.1:$P2/healthz") == ok ]] || return 1
  ! grep -q ERROR "$work/first.out" || { show first; return 1; }
}
check "the file mode starts, answers pong 0, and logs no ERROR" first_runs

second_instance() {
  launch second "${first_env[@]}" --
  local second=$launched status
  ends_within 5 "$second" || { echo "    still running after 5 s"; show second; return 1; }
  show second
  [[ $status != 0 ]] && grep -q "port $P1 (PINGPONG_PORT) is taken" "$work/second.out" &&
    grep -q "PINGPONG_PORT=$((P1 + 1)) ./run-local.sh" "$work/second.out" || return 1
  # The first instance is untouched, and no process of the second started.
  [[ $(curl -fs "http://127.0.0.1:$P1/pingpong") == "pong 1" ]] || return 1
  ! grep -q "^==> running" "$work/second.out" && ! grep -q "building" "$work/second.out"
}
check "a second instance on the same ports stops at once, names the port and its variable, exits non-zero" second_instance

taken_port() {
  local port listener status
  port=$(free_port)
  python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(120)' "$port" &
  listener=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  launch taken READER_PORT="$port" PINGPONG_PORT="$(free_port)" WRITER_METRICS_PORT="$(free_port)" \
    COUNTER_FILE="$work/taken/c.txt" LOG_FILE="$work/taken/o.log" --
  ends_within 5 "$launched" || { kill "$listener"; show taken; return 1; }
  kill "$listener"
  show taken
  [[ $status != 0 ]] && grep -q "port $port (READER_PORT) is taken by python3" "$work/taken.out"
}
check "a port taken by another program: the script names it, the variable that moves it, and exits non-zero" taken_port

dies_at_once() {
  : >"$work/a-file" # a directory cannot be made under a file, not even by root
  launch dies PINGPONG_PORT="$(free_port)" READER_PORT="$(free_port)" WRITER_METRICS_PORT="$(free_port)" \
    COUNTER_FILE="$work/a-file/pingpong_counter.txt" LOG_FILE="$work/dies/o.log" --
  local started=$SECONDS
  ends_within 8 "$launched" || { show dies; return 1; }
  show dies
  echo "    ended after $((SECONDS - started)) s with status $status"
  # pingpong's own line, whole (no other process's output cut into it).
  [[ $status != 0 ]] && grep -q "^pingpong: error: .*a-file.*$" "$work/dies.out" &&
    grep -q "pingpong exited at once (status 1)" "$work/dies.out"
}
check "a child that dies at once fails the start within seconds, its one line intact" dies_at_once

no_password_shown() {
  # A database that is not there: pingpong starts, never ready; the script
  # gives up after 10 s. Its password must appear nowhere.
  launch secret PINGPONG_PORT="$(free_port)" READER_PORT="$(free_port)" WRITER_METRICS_PORT="$(free_port)" \
    DATABASE_URL="postgres://someone:hunter2-secret@127.0.0.1:$(free_port)/x" LOG_FILE="$work/secret/o.log" -- --postgres
  ends_within 20 "$launched" || { show secret; return 1; }
  show secret
  [[ $status != 0 ]] && grep -q "postgres://someone:\*\*\*@" "$work/secret.out" &&
    grep -q "pingpong is not ready after 10 s: not ready: database unreachable" "$work/secret.out" &&
    ! grep -q hunter2 "$work/secret.out"
}
check "DATABASE_URL's password is never printed; a database away is named in the failure" no_password_shown

stops_on_ctrl_c() {
  kill -INT -- "-$first"
  ends_within 10 "$first" || return 1
  [[ $status == 0 ]] || { show first; return 1; }
  ! curl -fs "http://127.0.0.1:$P1/healthz" >/dev/null 2>&1 && [[ $(cat "$work/first/pingpong_counter.txt") == 2* ]]
}
check "Ctrl-C stops all three and exits 0; the count is on disk" stops_on_ctrl_c

postgres_under_spaces() {
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
    echo "    PostgreSQL's server is not installed here (CI installs it)"
    return 1
  fi
  # A student's checkout: ~/Documents/DevOps with Kubernetes/… (a link to
  # this one, so nothing is built again), and a data path long enough that
  # a socket inside it would pass the limit of 107 bytes.
  local checkout="$work/Documents/DevOps with Kubernetes" long data pg_port status
  mkdir -p "$work/Documents"
  ln -s "$PWD" "$checkout"
  long="$work/Documents/DevOps with Kubernetes data/a directory name long enough/to pass the socket limit of 107 bytes"
  data="$long/postgres"
  mkdir -p "$long"
  chmod -R 755 "$work/Documents"
  pg_port=$(free_port)
  local pp rp wp
  pp=$(free_port) rp=$(free_port) wp=$(free_port)
  SCRIPT="$checkout/run-local.sh" launch pg PINGPONG_PORT="$pp" READER_PORT="$rp" WRITER_METRICS_PORT="$wp" \
    LOCAL_PG_PORT="$pg_port" LOCAL_PG_DATA="$data" LOG_FILE="$work/pg/output.log" -- --postgres
  local run=$launched
  until_running pg "$run" || { show pg; return 1; }
  show pg
  [[ $(curl -fs "http://127.0.0.1:$pp/pingpong") == "pong 0" ]] &&
    [[ $(curl -fs "http://127.0.0.1:$pp/pingpong") == "pong 1" ]] &&
    [[ $(curl -fs "http://127.0.0.1:$pp/pings") == 2 ]] || return 1
  # Healthy: no ERROR (the writer starts after pingpong is ready); the psql line is there.
  ! grep -q ERROR "$work/pg.out" && grep -q -- "-p $pg_port -U pingpong pingpong" "$work/pg.out" || return 1
  kill -INT -- "-$run"
  ends_within 20 "$run" || return 1
  [[ $status == 0 ]] || { show pg; return 1; }
  # The database stopped with it, and its socket directory is gone.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null && [[ ! -f $data/postmaster.pid ]] &&
    ! compgen -G "/tmp/pingpong-pg.*/.s.PGSQL.$pg_port" >/dev/null
}
check "--postgres from a checkout path with spaces, data past the socket limit: pings, then Ctrl-C stops the database too" postgres_under_spaces

[[ $failed == 0 ]]
