#!/usr/bin/env bash
# The persistence suite: deploy, ping, kill pods, and prove nothing was lost;
# in the file mode also a backup and its restore after the volume is lost.
#
# Usage: ./test-persistent.sh [--podman] [--postgres | --ha] [--keep]
#   (default)   against the current kubectl context (the k3d cluster of k3d/up.sh)
#   --podman    plays the same manifests with podman on this machine (as CI does),
#               with host networking, and routes them with the real Traefik
#               (traefik/run.py: the manifests' Ingress, a stand-in API server);
#               what stands in for what: tests/persistent/podman.sh
#   --postgres  the PostgreSQL mode (postgres/): pingpong x3 on PostgreSQL,
#               log-output over HTTP; adds a node lost and the database restarted
#   --ha        the CloudNativePG mode (postgres-ha/, k3d only): adds the
#               primary's pod deleted and the primary's node stopped, under load
#   --keep      leave what was deployed running (podman) at the end
#   Both runtimes reach the apps as a student's curl does: through the Ingress at
#   $BASE_URL (default http://localhost:8081).
#   PINGS, LOAD, PARALLEL, STORM (environment): sizes of the steps
#
# Every step works out what it expects from the count (/pings) when it
# starts. Ends with the line `N passed, M failed` on every path (an EXIT
# trap prints it); exits non-zero if any step failed.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '4,19s/^# \{0,1\}//p' "$0"; }
RUNTIME=k8s MODE=file
export KEEP=no # read by the backends
for arg in "$@"; do
  case $arg in
    --podman) RUNTIME=podman ;;
    --postgres | --ha)
      [[ $MODE == file ]] || { echo "test-persistent.sh: --postgres and --ha are two modes; give one" >&2; exit 2; }
      MODE=${arg#--}
      ;;
    --keep) KEEP=yes ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

PINGS=${PINGS:-5}            # pings in the first step
LOAD=${LOAD:-400}            # requests in the replicas-under-load step
PARALLEL=${PARALLEL:-20}     # concurrent connections for the load
STORM=${STORM:-10}           # pod kills in the kill storm
BASE_URL=${BASE_URL:-http://localhost:8081}
NS=pingpong
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pingpong/Cargo.toml | head -n 1)
WORK=$(mktemp -d)

passed=0 failed=0
say() { printf '    %s\n' "$*"; }
fail() { say "FAIL: $*"; return 1; }

# step NAME FUNCTION: runs one step, counts it, and prints its result.
step() {
  printf '\n==> %s\n' "$1"
  if "$2"; then
    passed=$((passed + 1)); say "ok"
  else
    failed=$((failed + 1)); say "step failed: $1"
    backend_explain 2>&1 | sed 's/^/    | /'
  fi
}

# eventually TIMEOUT_S DESCRIPTION COMMAND...: polls until COMMAND succeeds.
eventually() {
  local timeout=$1 what=$2
  local deadline=$((SECONDS + timeout))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "timed out after $timeout s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# Through the Ingress: /pingpong and /pings reach pingpong, the rest the reader.
get() { curl -fsS --max-time 10 "$BASE_URL$1"; }
ping_once() { get /pingpong; }
# The count now, or a failed step: `start=$(count) || return 1`.
count() {
  local n
  n=$(get /pings) || n=""
  [[ $n =~ ^[0-9]+$ ]] || { fail "GET /pings gave no count (${n:-no answer})"; return 1; }
  echo "$n"
}
pingpong_ready() { get /pings | grep -qx '[0-9]*'; }
# settled COMMAND...: COMMAND succeeds, and still does 3 s later. Right after
# a pod is replaced its route may flap once: a readiness probe that caught the
# gap turns the endpoint unready, and the ingress controller applies that a
# moment later (Traefik batches provider changes for up to 2 s), after a
# first good answer.
settled() {
  local i
  for i in 1 2 3 4 5 6 7 8; do
    "$@" >/dev/null 2>&1 || return 1
    sleep 0.4
  done
}
ready() { pingpong_ready && get /readyz; }

# ---------------------------------------------------------------- backends
# Each backend (tests/persistent/k8s.sh, tests/persistent/podman.sh) provides:
#   backend_deploy, backend_replace_pod APP, backend_scale_up and
#   backend_scale_down (to the replicas of the load step: 2 in the file mode,
#   the PostgreSQL mode's 3 run from the start), backend_replicas,
#   backend_ready_pingpongs (pingpong pods ready behind the Service),
#   backend_get APP PORT PATH (a GET of one pod's port, as a scraper in the
#   cluster makes it), backend_security, backend_cleanup, backend_explain
#   (what a failed step prints: the pods' readiness and last log lines); for
#   the PostgreSQL and CloudNativePG modes backend_prepare_node_loss (picks the
#   node to stop), backend_lose_node, backend_node_gone (the cluster has
#   declared it lost), backend_eviction_seconds (pingpong's tolerationSeconds),
#   backend_replaced_elsewhere (every pingpong replica ready, none on it),
#   backend_restore_node; for the PostgreSQL mode backend_database_down,
#   backend_database_up; for the CloudNativePG mode backend_primary,
#   backend_new_primary OLD, backend_delete_primary POD,
#   backend_failover_bound pod|node, backend_database_healthy.
#   A backend that cannot run a mode says so and exits non-zero when sourced.
# shellcheck source=tests/persistent/k8s.sh
source "tests/persistent/$RUNTIME.sh"

finish() {
  local code=$?
  backend_cleanup || true
  rm -rf "$WORK"
  printf '\n%d passed, %d failed\n' "$passed" "$failed"
  if ((failed > 0 || code != 0)); then exit 1; fi
}
trap finish EXIT

# ------------------------------------------------------------------- steps
deploy() {
  backend_deploy || return 1
  eventually 180 "pingpong and the reader to answer through the Ingress" ready || {
    [[ -f $WORK/traefik.log ]] && tail -n 20 "$WORK/traefik.log" >&2
    return 1
  }
  say "through $BASE_URL: /pings reaches pingpong, /readyz the reader"
}

first_pings() {
  local start i answer
  start=$(count) || return 1
  say "the count starts at $start; sending $PINGS pings"
  for ((i = 0; i < PINGS; i++)); do
    answer=$(ping_once) || fail "ping $i was not answered" || return 1
    [[ $answer == "pong $((start + i))" ]] || fail "ping $i answered '$answer', expected 'pong $((start + i))'" || return 1
  done
  say "answered pong $start to pong $((start + PINGS - 1))"
}

reader_shows_count() {
  local now
  now=$(count) || return 1
  say "waiting for the writer's next entry to show Ping / Pongs: $now"
  # shellcheck disable=SC2317 # called through eventually
  shows() { get / | grep -qx "Ping / Pongs: $now"; }
  eventually 30 "the reader to show Ping / Pongs: $now" shows || return 1
  get / | sed 's/^/    | /'
}

pingpong_pod_replaced() {
  local before answer
  before=$(count) || return 1
  backend_replace_pod pingpong || return 1
  eventually 120 "the new pingpong pod to be ready, and to stay so" settled pingpong_ready || return 1
  answer=$(ping_once) || fail "the first ping after the new pod was not answered" || return 1
  say "the count was $before; after the new pod: $answer"
  [[ $answer == "pong $before" ]] || fail "expected 'pong $before'" || return 1
}

writer_of() { sed -n 's/^.*Z: \(.*\)\.$/\1/p'; }
log_output_pod_replaced() {
  local last old_id
  # The old writer's last entry before the pod goes: it must still be there
  # afterwards, followed by the new writer's. (A window of the log's tail
  # suffices: the new writer adds an entry every few seconds.)
  last=$(get "/log?tail=1" | head -n 1) || fail "GET /log failed" || return 1
  old_id=$(printf '%s\n' "$last" | writer_of)
  say "the old writer $old_id's last entry: $last"
  backend_replace_pod log-output || return 1
  eventually 120 "the new reader to be ready, and to stay so" settled get /readyz || return 1
  # shellcheck disable=SC2317 # called through eventually
  has_new_writer() { get "/log?tail=100" | writer_of | grep -qvxF "$old_id"; }
  eventually 30 "an entry from the new writer" has_new_writer || return 1
  local after new_id at_last at_new
  after=$(get "/log?tail=100")
  new_id=$(printf '%s\n' "$after" | writer_of | grep -vxF "$old_id" | head -n 1)
  say "the new writer is $new_id"
  # Line numbers: the old last entry, and the new writer's first entry.
  at_last=$(printf '%s\n' "$after" | grep -nxF -- "$last" | head -n 1 | cut -d: -f1)
  at_new=$(printf '%s\n' "$after" | grep -nF -- "Z: $new_id." | head -n 1 | cut -d: -f1)
  [[ -n $at_last ]] || fail "the old writer's last entry is gone from /log" || return 1
  ((at_last < at_new)) || fail "the old writer's last entry does not come before the new writer's first" || return 1
  say "the old writer's last entry is still in /log, followed by the new writer's"
}

load_through_service() {
  local i
  # shellcheck disable=SC2016 # expanded by the inner sh
  for ((i = 0; i < LOAD; i++)); do echo "$BASE_URL/pingpong"; done |
    xargs -P "$PARALLEL" -n 20 sh -c 'curl -sS --max-time 10 -w "\n" "$@" >"$0/load.$$.out"' "$WORK" \
      2>"$WORK/load.err" || true
}

all_replicas_ready() { [[ $(backend_ready_pingpongs) -eq $(backend_replicas) ]]; }
load_on_replicas() {
  local replicas start end answers distinct
  replicas=$(backend_replicas)
  eventually 120 "$replicas ready pingpong pods behind the Service" all_replicas_ready || return 1
  say "the Service has $replicas ready pingpong endpoints"
  start=$(count) || return 1
  say "$LOAD requests over $PARALLEL connections to $BASE_URL/pingpong, balanced across them"
  rm -f "$WORK"/load.*.out
  load_through_service
  # One file per curl process: parallel writers to one pipe would interleave.
  cat "$WORK"/load.*.out >"$WORK/answers"
  answers=$(grep -c '^pong [0-9]*$' "$WORK/answers" || true)
  distinct=$(grep '^pong [0-9]*$' "$WORK/answers" | sort -u | wc -l)
  end=$(count) || return 1
  say "answered $answers of $LOAD, $distinct distinct; the count went from $start to $end"
  ((answers == LOAD)) || fail "$((LOAD - answers)) requests were not answered: $(head -3 "$WORK/load.err")" || return 1
  ((distinct == answers)) || fail "some number was answered twice" || return 1
  ((end - start == answers)) || fail "the count grew by $((end - start)), not by the $answers answers" || return 1
}
replicas_under_load() {
  local ok=0
  backend_scale_up && load_on_replicas || ok=1
  # Back to the mode's replicas on every path, before the kill storm starts.
  backend_scale_down || ok=1
  return $ok
}

# One load client: pings until $WORK/stop exists (at most 20000 requests),
# one answer per line.
load_client() {
  local j
  for ((j = 0; j < 20000; j++)); do
    [[ -e $WORK/stop ]] && break
    curl -s --max-time 2 -w '\n' "$BASE_URL/pingpong" || true
  done >"$WORK/storm.$1"
}
# start_clients N: N load clients in the background (their pids in CLIENTS).
start_clients() {
  local i
  rm -f "$WORK/stop" "$WORK"/storm.*
  CLIENTS=""
  for ((i = 0; i < $1; i++)); do
    load_client "$i" &
    CLIENTS="$CLIENTS $!"
  done
}
# Stops the clients (only them: Traefik may run in the background too).
# shellcheck disable=SC2086 # a list of pids
stop_clients() { touch "$WORK/stop"; wait $CLIENTS; }
answers_of_clients() { cat "$WORK"/storm.* | grep -c '^pong [0-9]*$' || true; }
# What the clients saw: every answer distinct, the count above every one.
check_clients() {
  local answers distinct highest now
  answers=$(answers_of_clients)
  distinct=$(cat "$WORK"/storm.* | grep '^pong [0-9]*$' | sort -u | wc -l)
  highest=$(cat "$WORK"/storm.* | sed -n 's/^pong \([0-9]*\)$/\1/p' | sort -n | tail -n 1)
  now=$(count) || return 1
  say "$answers pings answered, $distinct distinct, highest pong ${highest:-none}; the count is now $now"
  ((answers > 0)) || fail "no ping was answered" || return 1
  ((distinct == answers)) || fail "a number was answered twice" || return 1
  ((now > highest)) || fail "the count $now is not above the highest answer $highest" || return 1
}

kill_storm() {
  local i
  say "20 clients pinging while a pingpong pod is killed and replaced $STORM times"
  start_clients 20
  for ((i = 1; i <= STORM; i++)); do
    backend_replace_pod pingpong >/dev/null || { stop_clients; return 1; }
    eventually 120 "pingpong to be ready after kill $i" pingpong_ready || { stop_clients; return 1; }
  done
  stop_clients
  eventually 120 "pingpong to be ready, and to stay so, after the storm" settled pingpong_ready || return 1
  check_clients
}

# The file mode's backups, by the manifests' CronJob and restore Job: a
# backup, more pings, everything on the volume lost, the restore; the next
# ping answers above every number answered before (none twice), and the
# log's entries from before the backup are back.
backup_restored() {
  local answer first last highest i
  first=$(get '/log?tail=1000' | head -n 1) || return 1
  backend_backup || return 1
  for ((i = 0; i < PINGS; i++)); do
    answer=$(ping_once) || fail "ping $i after the backup was not answered" || return 1
  done
  highest=${answer#pong }
  say "$PINGS pings after the backup, the last $answer"
  backend_lose_data || return 1
  backend_restore || return 1
  eventually 120 "pingpong and the reader to answer again" settled ready || return 1
  answer=$(ping_once) || fail "the first ping after the restore was not answered" || return 1
  say "after the restore: $answer (every earlier answer was at most $highest)"
  ((${answer#pong } > highest)) || fail "a number answered before was answered again" || return 1
  eventually 30 "the log's first entry back in /log" log_begins_with "$first" || return 1
  last=$(get '/log?tail=1' | tail -n 1)
  say "the log begins with its old first entry again; now: $last"
}
log_begins_with() { [[ $(get '/log?tail=1000' | head -n 1) == "$1" ]]; }

security() { backend_security; }

# metric TEXT NAME: the value of the sample NAME (no labels) in TEXT.
metric() { awk -v name="$2" '$1 == name { print $2 }' <<<"$1"; }
metrics() {
  local pp writer reader pod_count gauge entries
  # The pod's own count, then its gauge (the count as it last saw it).
  pod_count=$(backend_get pingpong 3000 /pings) || fail "pingpong's /pings (port 3000) did not answer" || return 1
  pp=$(backend_get pingpong 3000 /metrics) || fail "pingpong's /metrics (port 3000) did not answer" || return 1
  writer=$(backend_get log-output 9090 /metrics) || fail "the writer's /metrics (port 9090) did not answer" || return 1
  reader=$(backend_get log-output 8080 /metrics) || fail "the reader's /metrics (port 8080) did not answer" || return 1
  gauge=$(metric "$pp" pingpong_pings) entries=$(metric "$writer" log_output_writer_entries_appended_total)
  say "pingpong: pingpong_pings $gauge (its /pings: $pod_count), pings answered by this pod $(metric "$pp" pingpong_pings_answered_total)"
  say "writer: entries appended $entries; reader: $(grep -c '^log_output_reader_http_requests_total' <<<"$reader") request series"
  [[ $gauge == "$pod_count" ]] || fail "pingpong_pings $gauge is not the pod's count $pod_count" || return 1
  ((entries > 0)) || fail "the writer reports no entry appended" || return 1
  grep -q "^log_output_reader_build_info{version=\"$VERSION\"} 1$" <<<"$reader" ||
    fail "the reader's build info (version $VERSION) is missing" || return 1
}

# start_answered_load: 10 load clients, once their pings are being answered.
answering() { (($(answers_of_clients) > 20)); }
start_answered_load() {
  start_clients 10
  eventually 60 "the load to be answered" answering || { stop_clients; return 1; }
}

# answered_while GAP TIMEOUT WHAT COMMAND...: while the load clients run,
# polls until COMMAND succeeds, then until one more ping is answered; fails
# if GAP seconds pass with no ping answered, or TIMEOUT with COMMAND still
# failing. LONGEST_GAP keeps the longest time it saw without an answer.
LONGEST_GAP=0
answered_while() {
  local gap=$1 timeout=$2 what=$3
  shift 3
  local deadline=$((SECONDS + timeout)) seen last now met=no
  seen=$(answers_of_clients) last=$SECONDS
  while :; do
    now=$(answers_of_clients)
    if ((now > seen)); then
      seen=$now last=$SECONDS
      [[ $met == yes ]] && return 0
    fi
    ((SECONDS - last > LONGEST_GAP)) && LONGEST_GAP=$((SECONDS - last))
    if ((SECONDS - last > gap)); then
      fail "no ping answered for $((SECONDS - last)) s (at most $gap s allowed) while waiting for $what"
      return 1
    fi
    if [[ $met == no ]] && "$@" >/dev/null 2>&1; then met=yes; fi
    if [[ $met == no ]] && ((SECONDS >= deadline)); then
      fail "timed out after $timeout s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# PostgreSQL mode: a node with a pingpong replica (not the database's, nor
# Traefik's or CoreDNS's) is lost while pings go on, long enough for
# Kubernetes to declare it lost and to replace the replica elsewhere: never
# 10 s without an answer from the other replicas, numbers distinct, the
# count continues; then the node comes back.
node_lost() {
  local before
  backend_prepare_node_loss || return 1
  start_answered_load || return 1
  backend_lose_node || { stop_clients; return 1; }
  LONGEST_GAP=0
  answered_while 10 120 "the node to be declared lost (NotReady)" backend_node_gone || { stop_clients; return 1; }
  answered_while 10 $(($(backend_eviction_seconds) + 90)) "its pingpong replica to be replaced on the nodes left" \
    backend_replaced_elsewhere || { stop_clients; return 1; }
  before=$(answers_of_clients)
  # shellcheck disable=SC2317 # called through answered_while
  still_answered() { (($(answers_of_clients) > before + 200)); }
  answered_while 10 120 "200 more answers from the replicas left" still_answered || { stop_clients; return 1; }
  say "while the node was away, never more than $LONGEST_GAP s without an answer"
  backend_restore_node || { stop_clients; return 1; }
  eventually 180 "all replicas ready again" all_replicas_ready || { stop_clients; return 1; }
  stop_clients
  eventually 120 "pingpong to be ready, and to stay so" settled pingpong_ready || return 1
  check_clients
}

# PostgreSQL mode: the database's pod deleted under load: pings are refused
# meanwhile (503, never a made-up number), answered again after, none repeated.
database_restarted() {
  local refused before
  start_answered_load || return 1
  backend_database_down || { stop_clients; return 1; }
  # shellcheck disable=SC2317 # called through eventually
  refusing() { ! curl -fs --max-time 5 "$BASE_URL/pingpong" >/dev/null; }
  eventually 60 "pings to be refused while the database is away" refusing || { stop_clients; return 1; }
  refused=$(cat "$WORK"/storm.* | grep -vc '^pong [0-9]*$' || true)
  backend_database_up || { stop_clients; return 1; }
  before=$(answers_of_clients)
  # shellcheck disable=SC2317 # called through eventually
  answered_again() { (($(answers_of_clients) > before + 50)); }
  eventually 120 "pings to be answered again" answered_again || { stop_clients; return 1; }
  stop_clients
  say "$refused requests refused or unanswered while the database was away"
  # The first answers after the restart may come through a route that is
  # about to go: the pods were unready for a moment (their probes caught the
  # database away), and the ingress controller applies that up to 2 s late,
  # then their readiness again. The count is read once the route has settled.
  eventually 120 "pingpong to be ready, and to stay so, after the restart" settled pingpong_ready || return 1
  check_clients
}

# CloudNativePG mode: the primary's pod deleted with a 1 s grace, under load:
# pings refused while no primary takes writes, answered again within the
# failover bound (backend_failover_bound), nothing repeated; then the
# operator makes the pod again, as a standby.
primary_deleted() {
  local old bound
  bound=$(backend_failover_bound pod) || return 1
  start_answered_load || return 1
  old=$(backend_primary)
  [[ -n $old ]] || { stop_clients; fail "the Cluster names no current primary"; return 1; }
  backend_delete_primary "$old" || { stop_clients; return 1; }
  LONGEST_GAP=0
  answered_while "$bound" 300 "a new primary in place of $old" backend_new_primary "$old" || { stop_clients; return 1; }
  say "the new primary is $(backend_primary); at most $LONGEST_GAP s without an answer (allowed: $bound s)"
  eventually 300 "the Cluster healthy again, $old back as a standby" backend_database_healthy || { stop_clients; return 1; }
  stop_clients
  eventually 120 "pingpong to be ready, and to stay so" settled pingpong_ready || return 1
  check_clients
}

# CloudNativePG mode: the primary's node stopped, under load: answered
# again within the failover bound, which adds the time Kubernetes takes to
# declare the node lost; then, as in node_lost, the other replicas answer
# while the node's pingpong is replaced; the node comes back and its
# instance rejoins as a standby.
primary_node_lost() {
  local old bound
  backend_prepare_node_loss || return 1
  bound=$(backend_failover_bound node) || return 1
  start_answered_load || return 1
  old=$(backend_primary)
  [[ -n $old ]] || { stop_clients; fail "the Cluster names no current primary"; return 1; }
  backend_lose_node || { stop_clients; return 1; }
  LONGEST_GAP=0
  answered_while "$bound" 400 "a new primary in place of $old" backend_new_primary "$old" || { stop_clients; return 1; }
  say "the new primary is $(backend_primary); at most $LONGEST_GAP s without an answer (allowed: $bound s)"
  LONGEST_GAP=0
  answered_while 10 120 "the node to be declared lost (NotReady)" backend_node_gone || { stop_clients; return 1; }
  answered_while 10 $(($(backend_eviction_seconds) + 90)) "its pingpong replica to be replaced on the nodes left" \
    backend_replaced_elsewhere || { stop_clients; return 1; }
  say "after the failover, never more than $LONGEST_GAP s without an answer"
  backend_restore_node || { stop_clients; return 1; }
  eventually 300 "the Cluster healthy again, $old back as a standby" backend_database_healthy || { stop_clients; return 1; }
  eventually 180 "all replicas ready again" all_replicas_ready || { stop_clients; return 1; }
  stop_clients
  eventually 120 "pingpong to be ready, and to stay so" settled pingpong_ready || return 1
  check_clients
}

printf 'test-persistent.sh: %s, the %s mode, through %s\n' "$RUNTIME" "$MODE" "$BASE_URL"
step "deploy" deploy
if ((failed == 0)); then
  step "$PINGS pings are answered in order" first_pings
  step "the reader shows the count" reader_shows_count
  step "delete a pingpong pod: the next ping continues the count" pingpong_pod_replaced
  step "delete the log-output pod: the old entries are still in /log" log_output_pod_replaced
  step "$(backend_replicas) pingpong pods under load lose nothing" replicas_under_load
  step "kill storm: $STORM pod kills under load repeat and lose nothing" kill_storm
  if [[ $MODE == postgres ]]; then
    step "a node with a pingpong replica lost under load: the others answer throughout, nothing repeated" node_lost
    step "the database pod deleted under load: refused meanwhile, answered after, nothing repeated" database_restarted
  fi
  if [[ $MODE == ha ]]; then
    step "the primary's pod deleted under load: answered again after the failover, nothing repeated" primary_deleted
    step "the primary's node stopped under load: answered again after the failover, nothing repeated" primary_node_lost
  fi
  if [[ $MODE == file ]]; then
    step "a backup, more pings, everything on the volume lost, the restore: no number twice, the log back" backup_restored
  fi
  step "containers run as non-root with read-only root filesystems" security
  step "every process's /metrics answers in its pod; pingpong_pings is its count" metrics
fi
