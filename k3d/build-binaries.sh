#!/usr/bin/env bash
# Builds the static pingpong and log-output binaries for this machine's own
# architecture and copies them into OUT_DIR. The one build command of both
# image paths: the Containerfiles' Rust stage runs it inside Rust's official
# image, and `k3d/build-images.sh --host` runs it on a Linux host.
# Usage: k3d/build-binaries.sh OUT_DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: k3d/build-binaries.sh OUT_DIR" >&2; exit 2; }
out=$1
cd "$(dirname "$0")/.."

# The host's own target (x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu…),
# named explicitly so that +crt-static applies to the binaries only, not to
# build scripts and proc macros, which must stay dynamic.
target=$(rustc -vV | sed -n 's/^host: //p')
case $target in
  *-linux-gnu) ;;
  *) echo "k3d/build-binaries.sh: cannot build Linux images on $target; use the Docker build (k3d/build-images.sh without --host)" >&2
     exit 1 ;;
esac

echo "==> cargo build --release --locked --target $target (static glibc)" >&2
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet --target "$target" \
  --bin pingpong --bin log-output || {
  echo "k3d/build-binaries.sh: the static build failed. It needs a static glibc: Debian and Ubuntu have it" >&2
  echo "  in libc6-dev; Fedora and RHEL need: dnf install glibc-static. Or build in Docker: k3d/build-images.sh" >&2
  exit 1
}
target_dir=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
mkdir -p "$out"
cp "$target_dir/$target/release/pingpong" "$target_dir/$target/release/log-output" "$out/"
