#!/usr/bin/env bash
# One command from nothing to a running system on k3d: creates the cluster
# (k3d/cluster.yaml) unless it exists, makes /tmp/kube on agent-0 for the
# apps' user, builds and imports the images, applies storage and manifests,
# waits for the rollout and prints the curl commands.
# Usage: k3d/up.sh            (needs k3d, docker, kubectl)
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=k3s-default
NODE=k3d-$CLUSTER-agent-0
APP_UID=10001 # the images' USER and the pods' runAsUser/fsGroup
step() { printf '\n==> %s\n' "$*"; }

for tool in k3d docker kubectl cargo; do
  command -v "$tool" >/dev/null || { echo "k3d/up.sh: $tool is not installed" >&2; exit 1; }
done

if k3d cluster get "$CLUSTER" >/dev/null 2>&1; then
  step "cluster $CLUSTER exists; using it"
else
  step "k3d cluster create --config k3d/cluster.yaml"
  k3d cluster create --config k3d/cluster.yaml --wait
fi
kubectl config use-context "k3d-$CLUSTER" >/dev/null

step "making /tmp/kube on $NODE, owned by $APP_UID (the local PersistentVolume's directory)"
docker exec "$NODE" sh -c "mkdir -p /tmp/kube && chown $APP_UID:$APP_UID /tmp/kube && chmod 0770 /tmp/kube"

step "building images (k3d/build-images.sh)"
mapfile -t images < <(CONTAINER_ENGINE=docker k3d/build-images.sh)

step "k3d image import ${images[*]}"
k3d image import --cluster "$CLUSTER" "${images[@]}"

existed=$(kubectl -n pingpong get deployments -o name 2>/dev/null || true)
step "kubectl apply -k manifests (namespace, storage, Deployments, Services, Ingress)"
kubectl apply -k manifests
if [[ -n $existed ]]; then
  # Same tag, new image: roll the pods onto it (a safe rolling update).
  step "kubectl rollout restart (images re-imported)"
  kubectl -n pingpong rollout restart deployment/pingpong deployment/log-output
fi

step "waiting for the rollout"
kubectl -n pingpong rollout status deployment/pingpong --timeout=180s
kubectl -n pingpong rollout status deployment/log-output --timeout=180s

step "waiting for the Ingress (Traefik) to route localhost:8081"
for _ in $(seq 120); do
  curl -fs http://localhost:8081/readyz >/dev/null 2>&1 && break
  sleep 1
done

cat <<'MSG'

==> ready
    curl localhost:8081/pingpong        # pong N
    curl localhost:8081/pings           # the count
    curl localhost:8081/                # latest log entry
    curl 'localhost:8081/log?tail=5'    # last five entries
    kubectl -n pingpong get pods,pvc    # what runs
    ./test-persistent.sh                # the persistence suite (kills pods)
    k3d/down.sh                         # delete the cluster
MSG
