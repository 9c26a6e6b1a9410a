#!/usr/bin/env bash
# The backup suite: backups and their restore on the real binaries and a
# real PostgreSQL (Debian's server, started per test in a temporary
# directory, as in ./test-postgres.sh). The file mode's `log-output backup`
# and `log-output restore`, and the database modes' postgres/backup/backup.sh
# and restore.sh (what the CronJobs and the restore Jobs run), under load:
# everything lost after a backup and restored, every answer recorded,
# no number answered twice; negative controls (a plain copy back) that must
# show repeats; damaged and empty backups refused with nothing overwritten;
# backups taken under load exact and whole.
# Usage: ./test-backup.sh       (installs postgresql if missing)
set -euo pipefail
cd "$(dirname "$0")"

# shellcheck source=tests/need-postgres.sh
source tests/need-postgres.sh
echo "==> cargo build -p log-output (the backup's binary, beside pingpong's)"
cargo build -p log-output --quiet
echo "==> cargo test -p pingpong --test backup -- --ignored (one at a time: each starts its own processes)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test -p pingpong --test backup -- --ignored --test-threads=1 --nocapture 2>&1 | tee "$log" || true
# The test runner's own summary, as the suite's last line.
summary=$(grep -E '^test result:' "$log" | tail -n 1 || true)
[[ -n $summary ]] || { echo "0 passed, 1 failed (the tests did not build or run: above)"; exit 1; }
passed=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
