# Sourced by the suites that start a real PostgreSQL (test-postgres.sh,
# test-postgres-ha.sh, test-backup.sh): installs Debian's server when no
# PostgreSQL binaries are found (PG_BIN may name their directory).
# shellcheck shell=bash
if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && [[ -z ${PG_BIN:-} ]]; then
  echo "==> installing postgresql"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
