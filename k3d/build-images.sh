#!/usr/bin/env bash
# Builds the pingpong and log-output images (pingpong/Containerfile,
# log-output/Containerfile) and prints their names, one a line.
# Usage: k3d/build-images.sh [--host]
#   (default)  the Containerfiles compile the binaries in Rust's official image
#              for this machine's architecture: needs only Docker (or podman)
#   --host     cargo on this Linux machine builds them (k3d/build-binaries.sh,
#              the same command the Containerfiles run); nothing is pulled
# CONTAINER_ENGINE=docker|podman chooses the engine; default docker, since
# `k3d image import` reads Docker's images, and podman where there is no docker.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '4,10s/^# \{0,1\}//p' "$0"; }
binaries=rust
case ${1:-} in
  "") ;;
  --host) binaries=host ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }

if [ -n "${CONTAINER_ENGINE:-}" ]; then
  engine=$CONTAINER_ENGINE
elif command -v docker >/dev/null; then
  engine=docker
elif command -v podman >/dev/null; then
  engine=podman
else
  echo "k3d/build-images.sh: neither docker nor podman is installed" >&2
  exit 1
fi
tag=$(sed -n 's/^version = "\(.*\)"/\1/p' pingpong/Cargo.toml | head -n 1)

if [ "$binaries" = host ]; then
  rm -rf target/images
  k3d/build-binaries.sh target/images
fi
# Docker's legacy builder (Linux Docker without buildx, such as Debian's
# docker.io) runs every stage up to the target, the unused `host` stage
# included (moby builder/dockerfile/builder.go), and that stage copies
# target/images/: it must exist, even empty. BuildKit and podman skip it.
mkdir -p target/images
for app in pingpong log-output; do
  echo "==> $engine build -f $app/Containerfile --build-arg BINARIES=$binaries -t $app:$tag ." >&2
  # The build's own output goes to stderr: stdout carries only the image names.
  "$engine" build -f "$app/Containerfile" --build-arg "BINARIES=$binaries" -t "$app:$tag" . >&2
  echo "$app:$tag"
done
