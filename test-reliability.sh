#!/usr/bin/env bash
# The reliability suite: kill storm under load, faults injected with strace
# (ENOSPC, EIO, EROFS, SIGKILL at each syscall of an increment), on the real
# binaries. Hostile clients, corrupt files and SIGTERM under load are in the
# ordinary test command; pod kills and container security in
# ./test-persistent.sh --podman.
# Usage: ./test-reliability.sh        (installs strace if missing)
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v strace >/dev/null; then
  echo "==> installing strace"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
fi
echo "==> cargo test --test reliability -- --ignored (counter, pingpong and log-output)"
cargo test -p counter -p pingpong -p log-output --test reliability -- --ignored --nocapture
