# shellcheck shell=bash
# The persistence suite's Kubernetes backend (sourced by test-persistent.sh):
# the current kubectl context, which k3d/up.sh points at the course's k3d
# cluster. The functions the harness calls are listed in test-persistent.sh.

k() { kubectl -n "$NS" "$@"; }
SCALED=no NODE_TO_STOP="" STOPPED_NODE="" CORDONED=""
# The CloudNativePG mode's Cluster (postgres-ha/cluster.yaml); its instances'
# pods are labelled cnpg.io/cluster=pingpong-db, cnpg.io/podRole=instance.
DB_CLUSTER=clusters.postgresql.cnpg.io/pingpong-db
# What the cluster needs through a node loss, so never on the node stopped
# (pod selectors, in any namespace): CoreDNS (pingpong finds its database
# by name), Traefik (the Ingress on localhost:8081; k3d's load balancer
# passes a stopped node by: its nginx has proxy_connect_timeout 2s,
# max_fails=1, k3d-io/k3d proxy/templates/nginx.tmpl) and the CloudNativePG
# operator (it makes the failover). One replica each in k3s and in the
# operator's release manifest: on the stopped node they would wait out the
# 300 s of their default tolerations.
ESSENTIALS="k8s-app=kube-dns app.kubernetes.io/name=traefik app.kubernetes.io/name=cloudnative-pg"

backend_deploy() {
  command -v kubectl >/dev/null || fail "kubectl is not installed" || return 1
  local flag=""
  [[ $MODE == file ]] || flag=--$MODE
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
  local node
  if [[ $SCALED == yes ]]; then k scale deployment/pingpong --replicas=1 >/dev/null || true; fi
  if [[ -n $STOPPED_NODE ]]; then docker start "$STOPPED_NODE" >/dev/null || true; fi
  for node in $CORDONED; do kubectl uncordon "$node" >/dev/null || true; done
  return 0
}
# After a failed step: the pods, their endpoints, and each pingpong pod's
# last log lines.
backend_explain() {
  local pod
  kubectl get nodes
  k get pods,endpointslices -o wide
  if [[ $MODE == ha ]]; then k get "$DB_CLUSTER" -o wide; fi
  for pod in $(k get pods -l app.kubernetes.io/name=pingpong -o name); do
    echo "kubectl logs --tail 4 $pod:"
    k logs --tail 4 "$pod"
  done
}
# The file mode's backups on k3d: a Job made from the CronJob file-backup
# (as its schedule would), the shared volume's directory on agent-0
# emptied with the apps stopped, then k3d/restore.sh (which starts them
# again).
backend_backup() {
  k delete job backup-now --ignore-not-found >/dev/null
  k create job backup-now --from=cronjob/file-backup >/dev/null || return 1
  k wait --for=condition=complete job/backup-now --timeout=120s >/dev/null ||
    { k logs job/backup-now >&2; fail "the backup Job did not complete"; return 1; }
  k logs job/backup-now | sed 's/^/    | /'
  k delete job backup-now >/dev/null
}
backend_lose_data() {
  k scale deployment/pingpong deployment/log-output --replicas=0 >/dev/null || return 1
  k wait --for=delete pod -l 'app.kubernetes.io/name in (pingpong,log-output)' --timeout=120s >/dev/null 2>&1 || true
  docker exec k3d-k3s-default-agent-0 find /tmp/kube -mindepth 1 -delete || return 1
  say "deleted everything in /tmp/kube on k3d-k3s-default-agent-0"
}
backend_restore() {
  k3d/restore.sh >"$WORK/restore.out" 2>&1 || { cat "$WORK/restore.out" >&2; return 1; }
  grep '^restored backup' "$WORK/restore.out" | sed 's/^/    | /'
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

# ------------------------------------------------------------ node loss
# A node is a k3d node container (docker stop is the node gone, its pods
# with it). Only agents are stopped: the server runs the API server.
agents() { kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o name | sed 's|^node/||'; }
all_nodes() { kubectl get nodes -o name | sed 's|^node/||'; }
cordon() { kubectl cordon "$1" >/dev/null && CORDONED="$CORDONED $1"; }
uncordon() {
  local node rest=""
  kubectl uncordon "$1" >/dev/null || return 1
  for node in $CORDONED; do [[ $node == "$1" ]] || rest="$rest $node"; done
  CORDONED=$rest
}
# essentials_on NODE: the ESSENTIALS selectors with a pod on NODE.
essentials_on() {
  local sel
  for sel in $ESSENTIALS; do
    [[ -z $(kubectl get pods -A -l "$sel" --field-selector "spec.nodeName=$1" -o name) ]] || echo "$sel"
  done
}
# moved_off NODE SELECTOR...: no pod of each on NODE, and one Ready elsewhere.
moved_off() {
  local node=$1 sel
  shift
  for sel; do
    [[ -z $(kubectl get pods -A -l "$sel" --field-selector "spec.nodeName=$node" -o name) ]] || return 1
    kubectl get pods -A -l "$sel" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
      grep -qx True || return 1
  done
}
# clear_node NODE: the essentials on NODE made again on other nodes (their
# Deployments do it once their pods are deleted; NODE is cordoned meanwhile
# so that they land elsewhere), then NODE uncordoned.
clear_node() {
  local node=$1 sels sel
  sels=$(essentials_on "$node" | tr '\n' ' ')
  [[ -n $sels ]] || return 0
  say "moving ${sels% } off $node: kubectl cordon, their pods deleted (their Deployments make them again elsewhere), kubectl uncordon"
  cordon "$node" || return 1
  # shellcheck disable=SC2086 # a list of selectors
  for sel in $sels; do
    kubectl delete pods -A -l "$sel" --field-selector "spec.nodeName=$node" --wait=false >/dev/null || return 1
  done
  # shellcheck disable=SC2086 # a list of selectors
  eventually 180 "${sels% } to run Ready on another node" moved_off "$node" $sels || return 1
  uncordon "$node" || return 1
  eventually 120 "Traefik to route to pingpong again" settled pingpong_ready
}

pingpong_nodes() { k get pods -l app.kubernetes.io/name=pingpong -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}'; }
# The node stopped: an agent, cleared of the essentials first. The
# PostgreSQL mode: one with a pingpong replica and not postgres-0. The
# CloudNativePG mode: the primary's; when that is the server, or has to be
# cleared (cordoning it moves the primary off, CloudNativePG's handling of a
# drain), the primary is switched over to the instance on the chosen agent.
backend_prepare_node_loss() {
  local db_node node
  if [[ $MODE == ha ]]; then prepare_primary_node; return; fi
  db_node=$(k get pod postgres-0 -o jsonpath='{.spec.nodeName}') || return 1
  node=$(agents | grep -vxF "$db_node" | grep -xF -f <(pingpong_nodes) | head -n 1)
  [[ -n $node ]] || fail "no agent runs a pingpong replica without PostgreSQL (PostgreSQL on $db_node)" || return 1
  clear_node "$node" || return 1
  NODE_TO_STOP=$node
  say "the node to stop: $node (a pingpong replica, not PostgreSQL, which is on $db_node; no CoreDNS or Traefik)"
}
instance_on() {
  k get pods -l cnpg.io/cluster=pingpong-db,cnpg.io/podRole=instance --field-selector "spec.nodeName=$1" -o name |
    head -n 1 | sed 's|^pod/||'
}
is_primary() { [[ $(backend_primary) == "$1" ]] && backend_new_primary ""; }
prepare_primary_node() {
  local primary node instance other
  eventually 300 "the Cluster to be healthy" backend_database_healthy || return 1
  primary=$(backend_primary)
  [[ -n $primary ]] || fail "the Cluster names no current primary" || return 1
  node=$(k get pod "$primary" -o jsonpath='{.spec.nodeName}') || return 1
  agents | grep -qxF "$node" || node=$(agents | head -n 1)
  [[ -n $node ]] || fail "the cluster has no agent node to stop" || return 1
  clear_node "$node" || return 1
  eventually 300 "the Cluster to be healthy" backend_database_healthy || return 1
  instance=$(instance_on "$node")
  [[ -n $instance ]] || fail "no instance of pingpong-db runs on $node" || return 1
  if [[ $(backend_primary) != "$instance" ]]; then
    say "switching the primary over to $instance on $node: the other nodes cordoned (CloudNativePG moves a primary off an unschedulable node, to an instance on a schedulable one), then uncordoned"
    for other in $(all_nodes | grep -vxF "$node"); do cordon "$other" || return 1; done
    eventually 300 "$instance to be the primary" is_primary "$instance" || return 1
    for other in $(all_nodes | grep -vxF "$node"); do uncordon "$other" || return 1; done
    eventually 300 "the Cluster to be healthy" backend_database_healthy || return 1
    eventually 120 "pingpong to answer again" settled pingpong_ready || return 1
  fi
  NODE_TO_STOP=$node
  say "the node to stop: $node (the primary $instance; no CoreDNS, Traefik or operator)"
}
backend_lose_node() {
  say "docker stop $NODE_TO_STOP"
  STOPPED_NODE=$NODE_TO_STOP
  docker stop "$NODE_TO_STOP" >/dev/null
}
# Declared lost: its Ready condition is no longer True (Unknown once the
# kubelet has not reported for node-monitor-grace-period).
backend_node_gone() {
  local ready
  ready=$(kubectl get node "$STOPPED_NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') || return 1
  [[ -n $ready && $ready != True ]]
}
backend_eviction_seconds() {
  local seconds
  seconds=$(k get deployment/pingpong \
    -o jsonpath='{.spec.template.spec.tolerations[?(@.key=="node.kubernetes.io/unreachable")].tolerationSeconds}')
  echo "${seconds:-300}" # DefaultTolerationSeconds' 300 when the Deployment has none
}
# Every pingpong replica ready behind the Service, none on the stopped node.
backend_replaced_elsewhere() {
  local nodes
  # shellcheck disable=SC2016 # a Go template, not shell
  nodes=$(k get endpointslices -l kubernetes.io/service-name=pingpong-svc \
    -o go-template='{{range .items}}{{range .endpoints}}{{if .conditions.ready}}{{.nodeName}}{{"\n"}}{{end}}{{end}}{{end}}') || return 1
  [[ $(grep -c . <<<"$nodes") -eq $(backend_replicas) ]] && ! grep -qxF "$STOPPED_NODE" <<<"$nodes"
}
backend_restore_node() {
  say "docker start $STOPPED_NODE"
  docker start "$STOPPED_NODE" >/dev/null || return 1
  kubectl wait --for=condition=Ready "node/$STOPPED_NODE" --timeout=180s >/dev/null || return 1
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

# ------------------------------------------------------- CloudNativePG mode
backend_primary() { k get "$DB_CLUSTER" -o jsonpath='{.status.currentPrimary}'; }
# A primary other than OLD (the Cluster's .status.currentPrimary, a pod's
# name), Ready and labelled cnpg.io/instanceRole=primary, the label the
# Service pingpong-db-rw selects (the operator also sets the older role=primary;
# cloudnative-pg pkg/utils/labels_annotations.go, pkg/specs/services.go).
backend_new_primary() {
  local now state
  now=$(backend_primary) || return 1
  [[ -n $now && $now != "$1" ]] || return 1
  state=$(k get pod "$now" -o jsonpath='{.metadata.labels.cnpg\.io/instanceRole} {.status.conditions[?(@.type=="Ready")].status}') || return 1
  [[ $state == "primary True" ]]
}
backend_database_healthy() {
  local state
  state=$(k get "$DB_CLUSTER" -o jsonpath='{.status.readyInstances}/{.spec.instances} {.status.phase}') || return 1
  [[ $state =~ ^([0-9]+)/([0-9]+)\ Cluster\ in\ healthy\ state$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]
}
# The grace overrides the pod's terminationGracePeriodSeconds (the Cluster's
# stopDelay, 1800 s by default): the primary gets SIGTERM, and SIGKILL a
# second later.
backend_delete_primary() {
  say "kubectl delete pod $1 --grace-period=1 (the primary)"
  k delete pod "$1" --grace-period=1 --wait=false >/dev/null
}
# How long pings may go unanswered while CloudNativePG (1.30) fails over, in
# seconds; from its source (cloudnative-pg v1.30.0):
# - failoverDelay (.spec, default 0): the failover starts as soon as the
#   primary is seen unhealthy (internal/controller/replicas.go). A deleted
#   pod is seen at once: the operator leaves pods with a deletionTimestamp
#   out (pkg/utils/pod_conditions.go IsPodActive), so a standby heads the
#   list;
# - the primary lease (.spec.primaryLease.leaseDurationSeconds, default 15):
#   a standby may promote only once the old primary released the lease (a
#   clean shutdown) or once it saw it unrenewed that long
#   (internal/cmd/manager/instance/run/lease/runnable.go);
# - 45 s for the rest, about twice what it adds up to: the standbys' WAL
#   receivers stop within wal_receiver_timeout, 5 s (pkg/postgres/
#   configuration.go), the promotion and the relabelling that moves
#   pingpong-db-rw, pingpong's reconnect (a backoff of at most 2 s, 2 s to
#   connect and 2 s to log in);
# - a stopped node: 55 s more before the operator sees the primary unready:
#   node-monitor-grace-period, 50 s since Kubernetes 1.32 (40 s before:
#   kubernetes/kubernetes#126287), then up to a node-monitor-period, 5 s, for
#   the node lifecycle controller to mark its pods not Ready
#   (docs/src/failover.md, "Detection of node-level failures").
# switchoverDelay and the liveness probe add nothing here: the first bounds
# a live primary's fast shutdown, the second a hung postgres; a deleted pod
# and a stopped node have neither (the kubelet stops with the node).
backend_failover_bound() {
  local delay lease bound
  delay=$(k get "$DB_CLUSTER" -o jsonpath='{.spec.failoverDelay}') || return 1
  lease=$(k get "$DB_CLUSTER" -o jsonpath='{.spec.primaryLease.leaseDurationSeconds}') || return 1
  bound=$((${delay:-0} + ${lease:-15} + 45))
  [[ $1 == node ]] && bound=$((bound + 55))
  echo "$bound"
}
