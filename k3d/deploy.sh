#!/usr/bin/env bash
# Deploys to the current kubectl context and waits until everything is rolled
# out. Safe to run again: it also recovers what a deletion leaves behind (a
# namespace still terminating, a Released volume whose claim was deleted).
# Usage: k3d/deploy.sh [--postgres | --ha] [--restart]
#   (default)   the file mode, the course's way: kubectl apply -f storage/,
#               then -f manifests/
#   --postgres  the PostgreSQL mode: the Secret postgres-password (a random
#               password, made once), then kubectl apply -k postgres/
#   --ha        the count on CloudNativePG: the operator from its release
#               manifest, then kubectl apply -k postgres-ha/ once its
#               webhook answers; waits for the Cluster to be Ready
#   --restart   roll the Deployments onto images re-imported under the same tag
set -euo pipefail
cd "$(dirname "$0")/.."

NS=pingpong SECRET=postgres-password
# The file mode's volumes and their claims: the data, and its backups.
VOLUMES="shared-pv backup-pv" CLAIMS="shared-claim backup-claim"
# CloudNativePG, pinned: the release manifest of the tag (the operator, its
# CRDs and webhooks); postgres-ha/schemas/ holds that version's Cluster CRD.
CNPG_VERSION=1.30.0
CNPG_MANIFEST=https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/v$CNPG_VERSION/releases/cnpg-$CNPG_VERSION.yaml
CNPG_NS=cnpg-system CNPG_OPERATOR=deployment/cnpg-controller-manager DB=pingpong-db
mode=file restart=no
for arg in "$@"; do
  case $arg in
    --postgres) mode=postgres ;;
    --ha) mode=ha ;;
    --restart) restart=yes ;;
    *) sed -n '5,13s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
done
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'k3d/deploy.sh: %s\n' "$*" >&2; exit 1; }

# `kubectl delete ns pingpong` returns before the namespace is gone; applying
# into it meanwhile fails ("is being terminated").
if [ "$(kubectl get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null)" = Terminating ]; then
  step "waiting for the old namespace $NS to finish terminating"
  kubectl wait --for=delete "namespace/$NS" --timeout=180s
fi

# A Retain volume whose claim was deleted stays Released, bound to that old
# claim's uid for ever, and a new claim waits Pending. Clearing its claimRef
# makes it Available again; the data in /tmp/kube (and the backups in
# /tmp/kube-backups) is untouched.
free_released_volumes() {
  for pv in $VOLUMES; do
    if [ "$(kubectl get pv "$pv" -o jsonpath='{.status.phase}' 2>/dev/null)" = Released ]; then
      step "the volume $pv is Released (its old claim was deleted): clearing its claimRef, the data stays"
      kubectl patch pv "$pv" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]'
    fi
  done
}

if [ $mode = file ]; then
  free_released_volumes
  step "kubectl apply -f storage/ (the namespace, the volumes and their claims)"
  kubectl apply -f storage/
  step "kubectl apply -f manifests/ (Deployments, the backup CronJob, Services, Ingress, network policies)"
  kubectl apply -f manifests/
  step "waiting for the claims $CLAIMS to be Bound"
  for claim in $CLAIMS; do
    bound=no
    for _ in $(seq 90); do
      if [ "$(kubectl -n "$NS" get pvc "$claim" -o jsonpath='{.status.phase}')" = Bound ]; then bound=yes; break; fi
      free_released_volumes # a volume turns Released only a moment after its claim is gone
      sleep 1
    done
    [ $bound = yes ] || die "the claim $claim is not Bound after 90 s; see: kubectl -n $NS describe pvc $claim; kubectl get pv $VOLUMES"
  done
  rollouts="deployment/pingpong deployment/log-output"
elif [ $mode = ha ]; then
  step "kubectl apply --server-side -f $CNPG_MANIFEST (the CloudNativePG operator $CNPG_VERSION)"
  kubectl apply --server-side -f "$CNPG_MANIFEST" ||
    die "installing the CloudNativePG operator failed (kubectl's error is above); is raw.githubusercontent.com reachable?"
  step "waiting for the operator ($CNPG_OPERATOR in $CNPG_NS) and its Cluster CRD"
  kubectl wait --for=condition=Established crd/clusters.postgresql.cnpg.io --timeout=60s ||
    die "the Cluster CRD is not established; see: kubectl describe crd clusters.postgresql.cnpg.io"
  kubectl -n "$CNPG_NS" rollout status "$CNPG_OPERATOR" --timeout=240s ||
    die "the operator did not become available; see: kubectl -n $CNPG_NS get pods; kubectl -n $CNPG_NS logs $CNPG_OPERATOR"

  # Required anti-affinity: each instance on a node of its own, so three
  # nodes must take pods (not cordoned, no NoSchedule/NoExecute taint), or
  # the third instance stays Pending and the Cluster is never Ready.
  step "checking for 3 nodes that take pods (the Cluster puts one instance on each)"
  schedulable=0 deadline=$((SECONDS + 120))
  while :; do
    schedulable=$(kubectl get nodes -o go-template='{{range .items}}{{if not .spec.unschedulable}}{{.metadata.name}} {{range .spec.taints}}{{.effect}} {{end}}{{"\n"}}{{end}}{{end}}' |
      grep -cvw -e NoSchedule -e NoExecute || true)
    [ "$schedulable" -ge 3 ] && break
    [ $SECONDS -lt $deadline ] ||
      die "only $schedulable node(s) take pods, and the Cluster needs 3 (postgres-ha/cluster.yaml: podAntiAffinityType required); see: kubectl get nodes; kubectl describe nodes | grep -i taint"
    sleep 2
  done
  echo "    $schedulable nodes take pods"

  step "kubectl apply -f postgres-ha/namespace.yaml"
  kubectl apply -f postgres-ha/namespace.yaml
  # The operator's pod can be Available before the API server reaches its
  # webhook (the Service's endpoints, the CA it injects into the webhook
  # configurations): a Cluster sent then fails with "failed calling
  # webhook". A server-side dry run goes through the same webhooks and
  # stores nothing.
  step "waiting for the operator's webhook to answer (kubectl apply --dry-run=server of the Cluster, at most 120 s)"
  deadline=$((SECONDS + 120)) tries=0
  until answer=$(kubectl apply --dry-run=server -f postgres-ha/cluster.yaml 2>&1); do
    case $answer in
      *"failed calling webhook"* | *"no matches for kind"* | *"ensure CRDs are installed first"*) ;;
      *) die "the Cluster was refused: $answer" ;;
    esac
    [ $SECONDS -lt $deadline ] || die "the operator's webhook did not answer within 120 s; the last answer: $answer
  see: kubectl -n $CNPG_NS get pods,endpointslices; kubectl -n $CNPG_NS logs $CNPG_OPERATOR"
    tries=$((tries + 1))
    [ $tries -gt 1 ] || echo "    not yet ($(printf '%s\n' "$answer" | grep -o -m 1 -e 'failed calling webhook' -e 'no matches for kind' -e 'ensure CRDs are installed first' | head -n 1)); asking every 2 s"
    sleep 2
  done
  echo "    $answer"

  step "kubectl apply -k postgres-ha/ (the Cluster $DB, pingpong x3, log-output, the backup CronJob, Services, Ingress, network policies)"
  kubectl apply -k postgres-ha/
  # The first time: the image on three nodes, initdb, two standbys cloned.
  step "waiting for the Cluster $DB to be Ready (three instances; at most 600 s)"
  kubectl -n "$NS" wait "cluster/$DB" --for=condition=Ready --timeout=600s ||
    die "the Cluster $DB is not Ready; see: kubectl -n $NS get cluster $DB; kubectl -n $NS get pods -l cnpg.io/cluster=$DB; kubectl -n $NS describe cluster $DB (with the plugin: kubectl cnpg status $DB -n $NS)"
  rollouts="deployment/pingpong deployment/log-output"
else
  step "kubectl apply -f postgres/namespace.yaml"
  kubectl apply -f postgres/namespace.yaml
  if kubectl -n "$NS" get secret "$SECRET" >/dev/null 2>&1; then
    step "the Secret $SECRET exists: keeping its password (the database was made with it)"
  else
    step "kubectl create secret generic $SECRET (a random password, kept only in the cluster)"
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    kubectl -n "$NS" create secret generic "$SECRET" --from-literal=password="$password" >/dev/null
  fi
  # A StatefulSet made before its claims kept their volume (the class
  # local-path-retain) cannot take the new claim template: volumeClaimTemplates
  # are immutable. Keep its volume (Retain), delete the StatefulSet alone
  # (--cascade=orphan: the pod and the claim stay), and the apply below makes
  # it again, adopting the same claim data-postgres-0 by name.
  old_class=$(kubectl -n "$NS" get statefulset postgres \
    -o jsonpath='{.spec.volumeClaimTemplates[0].spec.storageClassName}' 2>/dev/null || true)
  if [ -n "$old_class" ] && [ "$old_class" != local-path-retain ]; then
    step "the StatefulSet postgres predates local-path-retain ($old_class): keeping its volume, making it again"
    volume=$(kubectl -n "$NS" get pvc data-postgres-0 -o jsonpath='{.spec.volumeName}' 2>/dev/null || true)
    if [ -n "$volume" ]; then
      kubectl patch pv "$volume" -p '{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}' >/dev/null
    fi
    kubectl -n "$NS" delete statefulset postgres --cascade=orphan
  fi
  step "kubectl apply -k postgres/ (PostgreSQL, pingpong x3, log-output, the backup CronJob, Services, Ingress, network policies)"
  kubectl apply -k postgres/
  # A claim of the local-path class binds only when its pod is scheduled.
  rollouts="statefulset/postgres deployment/pingpong deployment/log-output"
fi

if [ $restart = yes ]; then
  step "kubectl rollout restart (the images were re-imported under the same tag)"
  kubectl -n "$NS" rollout restart deployment/pingpong deployment/log-output
fi
step "waiting for the rollout"
for what in $rollouts; do
  kubectl -n "$NS" rollout status "$what" --timeout=240s ||
    die "$what did not roll out; see: kubectl -n $NS get pods; kubectl -n $NS describe pod -l app.kubernetes.io/name=${what#*/}"
done
