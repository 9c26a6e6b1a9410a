#!/usr/bin/env bash
# pingpong on real PostgreSQL replication: a primary and standbys from
# pg_basebackup, synchronous as CloudNativePG runs it, the test playing the
# operator (promote, repoint, rebuild). The faults, the checks and the
# negative control: pingpong/tests/postgres_ha.rs; what they showed:
# docs/postgres-ha.md. Installs Debian's PostgreSQL if missing.
# Usage: ./test-postgres-ha.sh
set -euo pipefail
cd "$(dirname "$0")"

# shellcheck source=tests/need-postgres.sh
source tests/need-postgres.sh
echo "==> cargo test -p pingpong --test postgres_ha -- --ignored (one at a time: each starts its servers)"
cargo test -p pingpong --test postgres_ha -- --ignored --nocapture --test-threads=1
