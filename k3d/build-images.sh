#!/usr/bin/env bash
# Builds the pingpong and log-output images: cargo builds static binaries on
# the host, then each is copied alone into a FROM-scratch image (nothing is
# pulled). Uses podman if present, else docker; CONTAINER_ENGINE overrides.
# Usage: k3d/build-images.sh            prints the image names it built
set -euo pipefail
cd "$(dirname "$0")/.."

engine=${CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
target=x86_64-unknown-linux-gnu
tag=$(sed -n 's/^version = "\(.*\)"/\1/p' pingpong/Cargo.toml | head -n 1)

echo "==> cargo build --release (static, $target)" >&2
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --target "$target" \
  --bin pingpong --bin log-output

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for app in pingpong log-output; do
  mkdir -p "$stage/$app"
  cp "target/$target/release/$app" "$app/Containerfile" "$stage/$app/"
  echo "==> $engine build $app:$tag" >&2
  "$engine" build --quiet -f "$stage/$app/Containerfile" -t "$app:$tag" "$stage/$app" >/dev/null
  echo "$app:$tag"
done
