#!/usr/bin/env bash
# The persistence suite: deploy, ping, kill pods, and prove nothing was lost.
#
# Usage: ./test-persistent.sh [--podman] [--keep]
#   (default)  against the current kubectl context (the k3d cluster of k3d/up.sh),
#              through the Ingress at $BASE_URL (default http://localhost:8081)
#   --podman   plays the same manifests with podman on this machine (as CI does),
#              on 127.0.0.1 with host networking
#   --keep     leave what was deployed running (podman) at the end
#   PINGS, LOAD, PARALLEL, STORM (environment): sizes of the steps
#
# Ends with the line `N passed, M failed`; exits non-zero if any step failed.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '4,11s/^# \{0,1\}//p' "$0"; }
mode=k8s keep=no
for arg in "$@"; do
  case $arg in
    --podman) mode=podman ;;
    --keep) keep=yes ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

PINGS=${PINGS:-5}            # pings in the first step
LOAD=${LOAD:-400}            # requests in the two-pod load step
PARALLEL=${PARALLEL:-20}     # concurrent connections for the load
STORM=${STORM:-10}           # pod kills in the kill storm
NS=pingpong
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
  fi
}

# eventually TIMEOUT_S DESCRIPTION COMMAND...: polls until COMMAND succeeds.
eventually() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "timed out after $1 s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

get() { curl -fsS --max-time 10 "$1"; }
ping_once() { get "$PINGPONG/pingpong"; }
count() { get "$PINGPONG/pings"; }

# ---------------------------------------------------------------- backends
# Each backend provides: backend_deploy, backend_replace_pod APP,
# backend_second_pingpong_up, backend_second_pingpong_down, backend_cleanup,
# and sets PINGPONG, READER (base URLs) and PINGPONG2 (the second pod's URL,
# or the same Service URL when the cluster balances across replicas).

if [[ $mode == podman ]]; then
  export CONTAINERS_CONF=$PWD/podman/containers.conf
  PINGPONG=http://127.0.0.1:3000 READER=http://127.0.0.1:8080 PINGPONG2=http://127.0.0.1:3001
  PINGPONG_READY=/readyz

  # podman 4.3 refuses `ports:` with host networking, and plays no Service,
  # Ingress or PersistentVolume: strip the ports from a copy of each
  # Deployment and play the claim on its own.
  strip_ports() {
    awk '
      skip { match($0, /^ */); if (RLENGTH > indent) next; skip = 0 }
      /^ *ports:$/ { match($0, /^ */); indent = RLENGTH; skip = 1; next }
      { print }' "$1"
  }
  strip_ports manifests/pingpong-deployment.yaml >"$WORK/pingpong.yaml"
  strip_ports manifests/log-output-deployment.yaml >"$WORK/log-output.yaml"
  sed -e '0,/^  name: pingpong$/s//  name: pingpong-b/' -e 's/value: "3000"/value: "3001"/' \
    "$WORK/pingpong.yaml" >"$WORK/pingpong-b.yaml"

  play() { podman kube play --network host "$1" >/dev/null 2>"$WORK/play.err" || { cat "$WORK/play.err" >&2; return 1; }; }
  down() { podman kube down "$1" >/dev/null 2>&1 || true; }
  app_file() { echo "$WORK/$1.yaml"; }

  backend_deploy() {
    command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc catatonit)" || return 1
    say "building images (k3d/build-images.sh)"
    CONTAINER_ENGINE=podman k3d/build-images.sh | sed 's/^/    built /' || return 1
    say "starting from an empty volume"
    down "$(app_file pingpong)"; down "$(app_file log-output)"; down "$(app_file pingpong-b)"
    podman volume rm -f shared-claim >/dev/null 2>&1 || true
    say "podman kube play storage/persistentvolumeclaim.yaml and both Deployments"
    podman kube play storage/persistentvolumeclaim.yaml >/dev/null || return 1
    play "$(app_file pingpong)" && play "$(app_file log-output)"
  }
  # Pod loss and rescheduling: SIGKILL the pod (harsher than Kubernetes'
  # SIGTERM on delete: nothing gets to finish), remove it, then play the
  # Deployment again on the same claim, as the ReplicaSet would.
  backend_replace_pod() {
    say "podman pod kill $1-pod-0 (SIGKILL) and rm, then kube play $1 again"
    podman pod kill "$1-pod-0" >/dev/null || return 1
    podman pod rm -f "$1-pod-0" >/dev/null 2>"$WORK/rm.err" || { cat "$WORK/rm.err" >&2; return 1; }
    play "$(app_file "$1")"
  }
  backend_second_pingpong_up() { play "$(app_file pingpong-b)"; }
  backend_second_pingpong_down() { down "$(app_file pingpong-b)"; }
  backend_cleanup() {
    [[ $keep == yes ]] && return 0
    down "$(app_file pingpong-b)"; down "$(app_file pingpong)"; down "$(app_file log-output)"
    podman volume rm -f shared-claim >/dev/null 2>&1 || true
  }
  backend_security() {
    local name user running ro caps ok=0
    for name in pingpong-pod-0-pingpong log-output-pod-0-writer log-output-pod-0-reader; do
      read -r user ro caps < <(podman inspect "$name" --format '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{len .EffectiveCaps}}')
      # The running process's own user, read from the host's /proc.
      running=$(podman top "$name" user | tail -n 1 | tr -d ' ')
      say "$name: configured user $user, running as $running, read-only root $ro, capabilities $caps"
      [[ ${user%%:*} =~ ^[0-9]+$ && ${user%%:*} -ne 0 && $running =~ ^[0-9]+$ && $running -ne 0 ]] || ok=1
      [[ $ro == true && $caps == 0 ]] || ok=1
    done
    podman exec log-output-pod-0-writer /usr/local/bin/log-output alive || { fail "the writer's liveness probe (log-output alive) failed"; ok=1; }
    return $ok
  }
else
  BASE_URL=${BASE_URL:-http://localhost:8081}
  PINGPONG=$BASE_URL READER=$BASE_URL PINGPONG2=$BASE_URL
  PINGPONG_READY=/pings
  k() { kubectl -n "$NS" "$@"; }

  backend_deploy() {
    command -v kubectl >/dev/null || fail "kubectl is not installed" || return 1
    say "kubectl apply -k manifests (context $(kubectl config current-context))"
    kubectl apply -k manifests >/dev/null || return 1
    k rollout status deployment/pingpong --timeout=180s >/dev/null &&
      k rollout status deployment/log-output --timeout=180s >/dev/null
  }
  backend_replace_pod() {
    local old
    old=$(k get pods -l "app.kubernetes.io/name=$1" -o name)
    say "kubectl delete ${old//$'\n'/ }"
    # shellcheck disable=SC2086 # one name per pod
    k delete $old --wait=true >/dev/null || return 1
    k rollout status "deployment/$1" --timeout=180s >/dev/null
  }
  backend_second_pingpong_up() {
    say "kubectl scale deployment/pingpong --replicas=2"
    k scale deployment/pingpong --replicas=2 >/dev/null || return 1
    k rollout status deployment/pingpong --timeout=180s >/dev/null
  }
  backend_second_pingpong_down() { k scale deployment/pingpong --replicas=1 >/dev/null; }
  backend_cleanup() { :; }
  backend_security() {
    local labels
    labels=$(kubectl get namespace "$NS" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')
    say "namespace $NS enforces Pod Security Standard: ${labels:-none}"
    [[ $labels == restricted ]] || return 1
    k get pods -o jsonpath='{range .items[*]}{.metadata.name}{" runAsUser="}{.spec.securityContext.runAsUser}{"\n"}{end}' | sed 's/^/    /'
  }
fi

cleanup() {
  backend_cleanup || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------- steps
# pingpong answers: /readyz on podman; through the Ingress only /pingpong and
# /pings reach pingpong (its /readyz would reach the reader), so /pings there.
pingpong_ready() { get "$1$PINGPONG_READY"; }
ready() { pingpong_ready "$PINGPONG" && get "$READER/readyz"; }

deploy() {
  backend_deploy || return 1
  eventually 120 "pingpong and the reader to be ready" ready
}

first_pings() {
  BASE=$(count) || fail "GET /pings failed" || return 1
  say "the count starts at $BASE; sending $PINGS pings"
  local i answer
  for ((i = 0; i < PINGS; i++)); do
    answer=$(ping_once) || fail "ping $i was not answered" || return 1
    [[ $answer == "pong $((BASE + i))" ]] || fail "ping $i answered '$answer', expected 'pong $((BASE + i))'" || return 1
  done
  say "answered pong $BASE to pong $((BASE + PINGS - 1))"
  EXPECT=$((BASE + PINGS))
}

reader_has_count() { get "$READER/" | grep -qx "Ping / Pongs: $EXPECT"; }
reader_shows_count() {
  say "waiting for the writer's next entry to show Ping / Pongs: $EXPECT"
  eventually 30 "the reader to show Ping / Pongs: $EXPECT" reader_has_count || return 1
  get "$READER/" | sed 's/^/    | /'
}

pingpong_pod_replaced() {
  backend_replace_pod pingpong || return 1
  eventually 120 "the new pingpong pod to be ready" pingpong_ready "$PINGPONG" || return 1
  local answer
  answer=$(ping_once) || fail "the first ping after the restart was not answered" || return 1
  say "after the new pod: $answer"
  [[ $answer == "pong $EXPECT" ]] || fail "expected 'pong $EXPECT'" || return 1
  EXPECT=$((EXPECT + 1))
}

log_output_pod_replaced() {
  local before old_ids after
  before=$(get "$READER/log?tail=1000") || fail "GET /log failed" || return 1
  old_ids=$(printf '%s\n' "$before" | sed -n 's/^.*Z: \(.*\)\.$/\1/p' | sort -u)
  say "the log holds $(printf '%s\n' "$before" | grep -c '^Ping / Pongs') entries from writer(s) ${old_ids//$'\n'/ }"
  backend_replace_pod log-output || return 1
  eventually 120 "the new reader to be ready" get "$READER/readyz" || return 1
  # shellcheck disable=SC2317 # called through eventually
  has_new_writer() { get "$READER/log?tail=1000" | sed -n 's/^.*Z: \(.*\)\.$/\1/p' | grep -qvxF "$old_ids"; }
  eventually 30 "an entry from the new writer" has_new_writer || return 1
  after=$(get "$READER/log?tail=1000")
  local id
  for id in $old_ids; do
    grep -qF "$id" <<<"$after" || fail "entries of writer $id are gone" || return 1
  done
  say "the old entries are still in /log, followed by the new writer's"
}

alternating_urls() {
  local i
  for ((i = 0; i < LOAD; i++)); do
    if ((i % 2)); then echo "$PINGPONG2/pingpong"; else echo "$PINGPONG/pingpong"; fi
  done
}

two_pods_under_load() {
  backend_second_pingpong_up || return 1
  eventually 120 "the second pingpong to be ready" pingpong_ready "$PINGPONG2" || return 1
  local start end answers distinct
  start=$(count)
  say "$LOAD requests over $PARALLEL connections, alternating between $PINGPONG and $PINGPONG2"
  alternating_urls >"$WORK/urls"
  # shellcheck disable=SC2016 # expanded by the inner sh
  xargs -P "$PARALLEL" -n 20 sh -c 'curl -sS --max-time 10 -w "\n" "$@" >"$0/load.$$.out"' "$WORK" \
    <"$WORK/urls" 2>"$WORK/load.err" || true
  # One file per curl process: parallel writers to one pipe would interleave.
  cat "$WORK"/load.*.out >"$WORK/answers"
  answers=$(grep -c '^pong [0-9]*$' "$WORK/answers" || true)
  distinct=$(grep '^pong [0-9]*$' "$WORK/answers" | sort -u | wc -l)
  end=$(count)
  backend_second_pingpong_down
  say "answered $answers of $LOAD, $distinct distinct; the count went from $start to $end"
  ((answers == LOAD)) || fail "$((LOAD - answers)) requests were not answered: $(head -3 "$WORK/load.err")" || return 1
  ((distinct == answers)) || fail "some number was answered twice" || return 1
  ((end - start == answers)) || fail "the count grew by $((end - start)), not by the $answers answers" || return 1
  EXPECT=$end
}

# One load client: pings until $WORK/stop exists (at most 20000 requests),
# one answer per line.
load_client() {
  local j
  for ((j = 0; j < 20000; j++)); do
    [[ -e $WORK/stop ]] && break
    curl -s --max-time 2 -w '\n' "$PINGPONG/pingpong" || true
  done >"$WORK/storm.$1"
}

kill_storm() {
  local i clients=20 answers distinct highest count
  rm -f "$WORK/stop" "$WORK"/storm.*
  say "$clients clients pinging while the pingpong pod is killed and replaced $STORM times"
  for ((i = 0; i < clients; i++)); do load_client "$i" & done
  for ((i = 1; i <= STORM; i++)); do
    backend_replace_pod pingpong >/dev/null || { touch "$WORK/stop"; wait; return 1; }
    eventually 120 "pingpong to be ready after kill $i" pingpong_ready "$PINGPONG" || { touch "$WORK/stop"; wait; return 1; }
  done
  touch "$WORK/stop"
  wait
  answers=$(cat "$WORK"/storm.* | grep -c '^pong [0-9]*$' || true)
  distinct=$(cat "$WORK"/storm.* | grep '^pong [0-9]*$' | sort -u | wc -l)
  highest=$(cat "$WORK"/storm.* | sed -n 's/^pong \([0-9]*\)$/\1/p' | sort -n | tail -n 1)
  count=$(count)
  say "$answers pings answered, $distinct distinct, highest pong ${highest:-none}; the count is now $count"
  ((answers > 0)) || fail "no ping was answered during the storm" || return 1
  ((distinct == answers)) || fail "a number was answered twice" || return 1
  ((count > highest)) || fail "the count $count is not above the highest answer $highest" || return 1
}

security() { backend_security; }

printf 'test-persistent.sh: mode %s\n' "$mode"
step "deploy" deploy
if ((failed == 0)); then
  step "$PINGS pings are answered in order" first_pings
  step "the reader shows the count" reader_shows_count
  step "delete the pingpong pod: the next ping continues the count" pingpong_pod_replaced
  step "delete the log-output pod: the old entries are still in /log" log_output_pod_replaced
  step "two pingpong pods on one volume under load lose nothing" two_pods_under_load
  step "kill storm: $STORM pod kills under load repeat and lose nothing" kill_storm
  step "containers run as non-root with read-only root filesystems" security
fi
printf '\n%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
