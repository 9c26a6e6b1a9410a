#!/usr/bin/env bash
# Runs the Containerfiles' Rust stage (the path k3d/up.sh takes on a student's
# laptop) on a machine that cannot pull images. A stand-in for the base image
# rust:1.95-slim-bookworm is made here: Debian 12 by debootstrap with gcc and
# libc6-dev (what the official slim image adds), this machine's own Rust
# toolchain, and this machine's CA bundle (its way to the package registries
# may be a TLS proxy). Then both images are built with BINARIES=rust by
# podman, cargo fetching crates inside the build as it does on a laptop, and
# pingpong is run from its image.
# TEST FIXTURE: the base image is a stand-in; the Containerfiles, the build
# context (.dockerignore) and k3d/build-binaries.sh are the things under test.
# Usage: .ci/rust-stage.sh      (root; needs podman, debootstrap, curl)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=docker.io/library/rust:1.95-slim-bookworm
export CONTAINERS_CONF=$PWD/podman/containers.conf
work=$(mktemp -d)
trap 'podman rm -f rust-stage-pingpong >/dev/null 2>&1 || true; podman volume rm -f rust-stage >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

if podman image exists "$BASE"; then
  echo "==> $BASE: already here (a stand-in made earlier, or the real one)"
else
  # The Debian mirror this machine's apt already uses (deb822 .sources files,
  # or classic `deb URL SUITE …` lines): none is assumed.
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\([^ ]*\/debian\)\/\{0,1\} *$/\1/p' | head -n 1)
  [[ -n $mirror ]] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\)\/\{0,1\} .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
  [[ -n $mirror ]] || { echo "rust-stage: no Debian mirror in this machine's apt sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list): debootstrap needs one" >&2; exit 1; }
  echo "==> stand-in for $BASE: debootstrap bookworm (from $mirror, this machine's apt mirror) with gcc, libc6-dev"
  debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  sysroot=$(rustc --print sysroot)
  echo "==> adding this machine's Rust toolchain ($(rustc --version)) and CA bundle"
  mkdir -p "$work/root/usr/local/rust"
  cp -a "$sysroot/bin" "$sysroot/lib" "$work/root/usr/local/rust/"
  rm -rf "$work/root/usr/local/rust/lib/rustlib/src"
  cp /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/ca-certificates.crt"
  tar -C "$work/root" -c . |
    podman import --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE" \
      >/dev/null 2>"$work/import.err" || { cat "$work/import.err" >&2; exit 1; }
  rm -rf "$work/root"
fi

for app in pingpong log-output; do
  echo "==> podman build -f $app/Containerfile --build-arg BINARIES=rust (the Rust stage, as on a laptop)"
  podman build --network host --build-arg BINARIES=rust -f "$app/Containerfile" -t "rust-stage/$app:check" . >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; exit 1; }
  echo "    steps taken from the cache: $(grep -c 'Using cache' "$work/build.log" || true)"
done
podman images --format '    {{.Repository}}:{{.Tag}} {{.Size}}' | grep rust-stage/

echo "==> pingpong from the image built in the Rust stage"
podman run -d --name rust-stage-pingpong --network host -e PORT=13777 -v rust-stage:/usr/src/app/files \
  rust-stage/pingpong:check >/dev/null
answers=""
for _ in $(seq 50); do
  if answer=$(curl -fs --max-time 2 http://127.0.0.1:13777/pingpong); then answers="$answers$answer;"; fi
  [[ $answers == *"pong 1;"* ]] && break
  sleep 0.1
done
echo "    answered: $answers"
[[ $answers == "pong 0;pong 1;" ]] || { echo "rust-stage: expected pong 0 then pong 1" >&2; exit 1; }
