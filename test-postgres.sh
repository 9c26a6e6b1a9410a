#!/usr/bin/env bash
# The PostgreSQL suite: pingpong on a real PostgreSQL (Debian's server, which
# each test starts in a temporary directory on 127.0.0.1, as the postgres user
# when run as root, and stops at the end), with real processes and real
# faults: three replicas under 50 connections, a kill storm of replicas, the
# database stopped, its sessions ended, crashed and hung under load,
# pingpong started before its database, a wrong password, a bad URL, and the
# log-output writer over PINGPONG_URL with pingpong gone and back.
# Usage: ./test-postgres.sh       (installs postgresql if missing)
set -euo pipefail
cd "$(dirname "$0")"

# shellcheck source=tests/need-postgres.sh
source tests/need-postgres.sh
echo "==> cargo test -p pingpong --test postgres -- --ignored"
cargo test -p pingpong --test postgres -- --ignored --nocapture
