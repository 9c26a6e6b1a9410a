#!/usr/bin/env bash
# Deploys to the current kubectl context and waits until everything is rolled
# out. Safe to run again: it also recovers what a deletion leaves behind (a
# namespace still terminating, a Released volume whose claim was deleted).
# Usage: k3d/deploy.sh [--postgres] [--restart]
#   (default)   the file mode, the course's way: kubectl apply -f storage/,
#               then -f manifests/
#   --postgres  the PostgreSQL mode: the Secret postgres-password (a random
#               password, made once), then kubectl apply -k postgres/
#   --restart   roll the Deployments onto images re-imported under the same tag
set -euo pipefail
cd "$(dirname "$0")/.."

NS=pingpong PV=shared-pv CLAIM=shared-claim SECRET=postgres-password
mode=file restart=no
for arg in "$@"; do
  case $arg in
    --postgres) mode=postgres ;;
    --restart) restart=yes ;;
    *) sed -n '5,10s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
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
# makes it Available again; the data in /tmp/kube is untouched.
free_released_volume() {
  if [ "$(kubectl get pv "$PV" -o jsonpath='{.status.phase}' 2>/dev/null)" = Released ]; then
    step "the volume $PV is Released (its old claim was deleted): clearing its claimRef, the data stays"
    kubectl patch pv "$PV" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]'
  fi
}

if [ $mode = file ]; then
  free_released_volume
  step "kubectl apply -f storage/ (the namespace, the volume and its claim)"
  kubectl apply -f storage/
  step "kubectl apply -f manifests/ (Deployments, Services, Ingress, network policies)"
  kubectl apply -f manifests/
  step "waiting for the claim $CLAIM to be Bound"
  bound=no
  for _ in $(seq 90); do
    if [ "$(kubectl -n "$NS" get pvc "$CLAIM" -o jsonpath='{.status.phase}')" = Bound ]; then bound=yes; break; fi
    free_released_volume # the volume turns Released only a moment after its claim is gone
    sleep 1
  done
  [ $bound = yes ] || die "the claim $CLAIM is not Bound after 90 s; see: kubectl -n $NS describe pvc $CLAIM; kubectl get pv $PV"
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
  step "kubectl apply -k postgres/ (PostgreSQL, pingpong x3, log-output, Services, Ingress, network policies)"
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
