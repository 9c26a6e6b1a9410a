# shellcheck shell=bash
# The persistence suite's Kubernetes backend (sourced by test-persistent.sh):
# the current kubectl context, which k3d/up.sh points at the course's k3d
# cluster. The functions the harness calls are listed in test-persistent.sh.

k() { kubectl -n "$NS" "$@"; }
SCALED=no STOPPED_NODE=""

backend_deploy() {
  command -v kubectl >/dev/null || fail "kubectl is not installed" || return 1
  local flag=""
  [[ $MODE == postgres ]] && flag=--postgres
  say "k3d/deploy.sh $flag (context $(kubectl config current-context))"
  # shellcheck disable=SC2086 # no flag, or one
  k3d/deploy.sh $flag >"$WORK/deploy.out" 2>&1 || { cat "$WORK/deploy.out" >&2; return 1; }
}
# One pod of APP deleted (in the PostgreSQL mode one of pingpong's three,
# the others serving meanwhile); returns once the Deployment is whole again.
backend_replace_pod() {
  local old
  old=$(k get pods -l "app.kubernetes.io/name=$1" -o name | head -n 1)
  say "kubectl delete $old"
  k delete "$old" --ignore-not-found --wait=true >/dev/null || return 1
  k rollout status "deployment/$1" --timeout=180s >/dev/null
}
backend_scale_up() {
  [[ $MODE == file ]] || return 0
  say "kubectl scale deployment/pingpong --replicas=2"
  SCALED=yes
  k scale deployment/pingpong --replicas=2 >/dev/null || return 1
  k rollout status deployment/pingpong --timeout=180s >/dev/null
}
one_pingpong_pod() { [[ $(k get pods -l app.kubernetes.io/name=pingpong -o name | wc -l) -eq 1 ]]; }
backend_scale_down() {
  [[ $MODE == file ]] || return 0
  say "kubectl scale deployment/pingpong --replicas=1, and wait until one pod is left"
  k scale deployment/pingpong --replicas=1 >/dev/null || return 1
  SCALED=no
  eventually 120 "the second pingpong pod to go" one_pingpong_pod
}
backend_replicas() { [[ $MODE == file ]] && echo 2 || echo 3; }
# Ready endpoints of the Service, as Traefik sees them. A go-template, not a
# jsonpath {range}, which errors on a slice with no endpoints.
backend_ready_pingpongs() {
  # shellcheck disable=SC2016 # a Go template, not shell
  k get endpointslices -l kubernetes.io/service-name=pingpong-svc \
    -o go-template='{{range .items}}{{range .endpoints}}{{if .conditions.ready}}ready{{"\n"}}{{end}}{{end}}{{end}}' |
    grep -c '^ready$' || true
}
# GET PATH of PORT of APP's first running pod, through the API server's proxy
# to the pod: no port-forward, and it passes the NetworkPolicy as any
# in-cluster scraper must.
backend_get() {
  local pod
  pod=$(k get pods -l "app.kubernetes.io/name=$1" --field-selector=status.phase=Running -o name | head -n 1)
  kubectl get --raw "/api/v1/namespaces/$NS/pods/${pod#pod/}:$2/proxy$3"
}
backend_cleanup() {
  if [[ $SCALED == yes ]]; then k scale deployment/pingpong --replicas=1 >/dev/null || true; fi
  if [[ -n $STOPPED_NODE ]]; then docker start "$STOPPED_NODE" >/dev/null || true; fi
  return 0
}
# After a failed step: the pods, their endpoints, and each pingpong pod's
# last log lines.
backend_explain() {
  local pod
  k get pods,endpointslices -o wide
  for pod in $(k get pods -l app.kubernetes.io/name=pingpong -o name); do
    echo "kubectl logs --tail 4 $pod:"
    k logs --tail 4 "$pod"
  done
}
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

# PostgreSQL mode: the k3d node container of an agent that runs a pingpong
# replica but not PostgreSQL, stopped (`docker stop`: the node is gone, its
# pods with it), and started again.
backend_lose_node() {
  local db_node node
  db_node=$(k get pod postgres-0 -o jsonpath='{.spec.nodeName}')
  node=$(k get pods -l app.kubernetes.io/name=pingpong -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' |
    grep -v -x -F "$db_node" | grep agent | head -n 1)
  [[ -n $node ]] || fail "no agent runs a pingpong replica without PostgreSQL (PostgreSQL on $db_node)" || return 1
  say "docker stop $node (a pingpong replica is there, PostgreSQL is on $db_node)"
  STOPPED_NODE=$node
  docker stop "$node" >/dev/null
}
backend_restore_node() {
  say "docker start $STOPPED_NODE"
  docker start "$STOPPED_NODE" >/dev/null || return 1
  STOPPED_NODE=""
  kubectl wait --for=condition=Ready node --all --timeout=180s >/dev/null
}
# PostgreSQL mode: its pod deleted; the StatefulSet makes it again, on its claim.
backend_database_down() { say "kubectl delete pod postgres-0"; k delete pod postgres-0 --wait=false >/dev/null; }
backend_database_up() {
  say "waiting for the StatefulSet's new postgres-0"
  k rollout status statefulset/postgres --timeout=180s >/dev/null &&
    k wait --for=condition=Ready pod/postgres-0 --timeout=180s >/dev/null
}
