#!/usr/bin/env bash
# Deletes the k3d cluster and with it everything on it, /tmp/kube included
# (it lives inside the agent-0 node container), and the backups with it
# (/tmp/kube-backups there, and the PostgreSQL mode's claim postgres-backups):
# copy them off first if you want them (docs/backups.md).
# Usage: k3d/down.sh
set -euo pipefail
command -v k3d >/dev/null || { echo "k3d/down.sh: k3d is not installed" >&2; exit 1; }
echo "==> k3d cluster delete k3s-default"
k3d cluster delete k3s-default
