#!/usr/bin/env bash
# One command from nothing to a running system on k3d, and safe to run again:
# makes the cluster (k3d/cluster.yaml) or starts and checks the one there is,
# makes /tmp/kube and /tmp/kube-backups on agent-0 for the apps' user (the
# file mode's volume and its backups' volume), builds and imports the
# images (and checks every node has them), deploys (k3d/deploy.sh), waits
# until Traefik routes, prints the URLs.
# Usage: k3d/up.sh [--postgres | --ha] [--host-build]
#   --postgres    the PostgreSQL mode (postgres/): the count in PostgreSQL,
#                 pingpong x3 over the nodes, log-output over HTTP
#   --ha          the same on a replicated PostgreSQL (postgres-ha/): the
#                 CloudNativePG operator, a Cluster of 3 instances, one per node
#   --host-build  build the binaries with cargo on this Linux machine instead
#                 of in Docker (k3d/build-images.sh --host)
# Needs k3d 5.5 or newer (k3d/cluster.yaml is k3d.io/v1alpha5), Docker and
# kubectl; Rust only with --host-build.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=k3s-default
NODE=k3d-$CLUSTER-agent-0
LB=k3d-$CLUSTER-serverlb
APP_UID=10001 # the images' USER and the pods' runAsUser/fsGroup
step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nk3d/up.sh: %s\n' "$*" >&2; exit 1; }

build_flag="" deploy_flag=""
for arg in "$@"; do
  case $arg in
    --postgres) deploy_flag=--postgres ;;
    --ha) deploy_flag=--ha ;;
    --host-build) build_flag=--host ;;
    *) sed -n '8,14s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
done

for tool in k3d docker kubectl; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
# `k3d version` prints "k3d version v5.6.0"; v1alpha5 configs need 5.5.
k3d_version=$(k3d version 2>/dev/null | sed -n 's/^k3d version v\{0,1\}\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
read -r k3d_major k3d_minor <<EOF
${k3d_version:-0 0}
EOF
if [ "$k3d_major" -lt 5 ] || { [ "$k3d_major" -eq 5 ] && [ "$k3d_minor" -lt 5 ]; }; then
  die "k3d 5.5 or newer is needed (k3d/cluster.yaml is k3d.io/v1alpha5); this is: $(k3d version 2>/dev/null | head -n 1)"
fi
# Docker's own words: not running, no permission on its socket (add
# yourself to the docker group), or a context that points elsewhere.
if ! docker_error=$(docker info 2>&1 >/dev/null); then
  die "Docker does not answer: $(printf '%s\n' "$docker_error" | grep -v '^[[:space:]]*$' | tail -n 1)"
fi

# --------------------------------------------------------------- the cluster
if ! status=$(k3d cluster list "$CLUSTER" --no-headers 2>/dev/null); then
  step "k3d cluster create --config k3d/cluster.yaml"
  k3d cluster create --config k3d/cluster.yaml --wait
else
  # NAME SERVERS AGENTS LOADBALANCER, with SERVERS and AGENTS as running/total.
  read -r _ servers agents _ <<EOF
$status
EOF
  if [ "${servers%/*}" != "${servers#*/}" ] || [ "${agents%/*}" != "${agents#*/}" ]; then
    step "cluster $CLUSTER is stopped (servers $servers, agents $agents running): k3d cluster start"
    k3d cluster start "$CLUSTER" --wait
  else
    step "cluster $CLUSTER exists and runs; using it"
  fi
fi

# The cluster must have the course's shape: the volume is pinned to agent-0,
# and the URLs use localhost:8081.
k3d node list --no-headers | awk '{print $1}' | grep -qx "$NODE" ||
  die "cluster $CLUSTER has no node $NODE, where the volume lives. It is not the course's shape; making it again deletes it and all it holds (earlier exercises too): if that is fine, k3d/down.sh && k3d/up.sh"
ports=$(docker inspect --format '{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{$p}}={{.HostPort}} {{end}}{{end}}' "$LB" 2>/dev/null || true)
case " $ports " in
  *" 80/tcp=8081 "*) ;;
  *) die "cluster $CLUSTER does not publish Traefik on localhost:8081 (its load balancer maps: ${ports:-nothing}). It is not the course's shape; making it again deletes it and all it holds (earlier exercises too): if that is fine, k3d/down.sh && k3d/up.sh" ;;
esac

if ! kubectl config get-contexts "k3d-$CLUSTER" >/dev/null 2>&1; then
  step "the kubeconfig has no context k3d-$CLUSTER: k3d kubeconfig merge"
  k3d kubeconfig merge "$CLUSTER" --kubeconfig-merge-default --kubeconfig-switch-context >/dev/null
fi
kubectl config use-context "k3d-$CLUSTER" >/dev/null

step "making /tmp/kube and /tmp/kube-backups on $NODE, owned by $APP_UID (the local PersistentVolumes' directories: the data, its backups)"
for dir in /tmp/kube /tmp/kube-backups; do
  docker exec "$NODE" sh -c "mkdir -p $dir && chown $APP_UID:$APP_UID $dir && chmod 0770 $dir"
done

# ---------------------------------------------------------------- the images
step "building images (k3d/build-images.sh $build_flag)"
# shellcheck disable=SC2086 # no flag, or one
images=$(CONTAINER_ENGINE=docker k3d/build-images.sh $build_flag) || die "building the images failed (the build's error is above)"
images=$(printf '%s\n' "$images" | tr '\n' ' ') # one line
step "k3d image import $images"
# shellcheck disable=SC2086 # one word per image
k3d image import --cluster "$CLUSTER" $images || die "k3d image import failed (its error is above)"
# k3d logs a node's failed import and still exits 0 (pkg/client/tools.go):
# look in every node's containerd, where the kubelet will look.
for node in $(k3d node list --no-headers | awk -v c="$CLUSTER" '$3 == c && ($2 == "server" || $2 == "agent") {print $1}'); do
  have=$(docker exec "$node" ctr -n k8s.io images ls -q 2>/dev/null || true)
  for image in $images; do
    printf '%s\n' "$have" | grep -Eq "(^|/)$image\$" ||
      die "node $node does not have the image $image after k3d image import (see its errors above); try: k3d image import --cluster $CLUSTER $image"
  done
done
echo "    every node has: $images"

# ------------------------------------------------------------------- deploy
restart=""
kubectl -n pingpong get deployment pingpong >/dev/null 2>&1 && restart=--restart
# shellcheck disable=SC2086 # no flag, or one each
k3d/deploy.sh $deploy_flag $restart

step "waiting for Traefik to route localhost:8081 (at most 120 s)"
routed=no deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ]; do
  if curl -fs --max-time 2 http://localhost:8081/pings 2>/dev/null | grep -qx '[0-9]*' &&
    curl -fs --max-time 2 http://localhost:8081/ >/dev/null 2>&1; then
    routed=yes
    break
  fi
  sleep 1
done
[ $routed = yes ] || die "Traefik did not route localhost:8081/pings to pingpong and / to the reader within 120 s. Look at:
    kubectl -n kube-system get pods -l app.kubernetes.io/name=traefik
    kubectl -n pingpong describe ingress pingpong-log-output
    kubectl -n pingpong get endpointslices
    curl -i localhost:8081/pings"

cat <<'MSG'

==> ready
    curl localhost:8081/pingpong        # pong N
    curl localhost:8081/pings           # the count
    curl localhost:8081/                # latest log entry
    curl 'localhost:8081/log?tail=5'    # last five entries
    kubectl -n pingpong get pods,pvc    # what runs
    kubectl -n pingpong get cluster     # with --ha: the database, its primary and its instances
    ./test-persistent.sh                # the persistence suite (kills pods; --postgres for that mode)
    k3d/restore.sh                      # put the newest backup back (--postgres for that mode; docs/backups.md)
    k3d/down.sh                         # delete the cluster
MSG
