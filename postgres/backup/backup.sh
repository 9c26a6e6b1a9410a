#!/bin/sh
# One backup of the count in PostgreSQL, as the CronJob postgres-backup runs
# it (cronjob.yaml, from the database's own image: postgres:17.9 in
# postgres/, the Cluster's PostgreSQL 18 in postgres-ha/) and as
# ./test-backup.sh runs it on a real server: pg_dump's custom format of the
# database, written beside its place, read back whole, renamed into
# BACKUP_DIR; the newest BACKUP_KEEP kept. One line out; any failure exits
# non-zero with one line, so the Job fails visibly.
# Environment: libpq's PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD;
# BACKUP_DIR (default /backups), BACKUP_KEEP (default 7).
# The restore, and why a backup's name is its time: restore.sh.
set -eu
export LC_ALL=C # names sort by time in a glob

dir=${BACKUP_DIR:-/backups}
keep=${BACKUP_KEEP:-7}
fail() { printf 'backup: %s\n' "$*" >&2; exit 1; }
first_line() { printf '%s\n' "$1" | head -n 1; }
# The count in the SQL that pg_restore makes of a dump (row 1 of
# pingpong_counter), or nothing.
count_in_sql() {
  awk -F '\t' '/^COPY public\.pingpong_counter \(id, count\)/ { copy = 1; next } copy && $1 == "1" { print $2; exit }'
}
case $keep in '' | *[!0-9]* | 0) fail "BACKUP_KEEP must be a whole number above 0, got '$keep'" ;; esac
mkdir -p "$dir" || fail "cannot create BACKUP_DIR $dir"
# What a run killed at its deadline left (a shell runs no EXIT trap on
# SIGTERM); the CronJob runs one at a time.
rm -f "$dir"/.partial-pingpong-*.dump

# The time is read before the dump's snapshot is taken: the restore's bound
# counts from it, so it must not be later than the count it names.
name=pingpong-$(date -u +%Y%m%dT%H%M%S.%3NZ).dump
partial=$dir/.partial-$name
trap 'rm -f "$partial"' EXIT
err=$(pg_dump --format=custom --file="$partial" 2>&1) ||
  fail "pg_dump of database '${PGDATABASE:-}' on ${PGHOST:-}:${PGPORT:-5432} failed: $(first_line "$err"); no backup written"

# Read it back whole (pg_restore decodes every byte of it): a backup that
# is written is one that restores.
sql=$(pg_restore --file=- "$partial" 2>&1) ||
  fail "the dump just written cannot be read back: $(first_line "$sql"); no backup written"
count=$(printf '%s\n' "$sql" | count_in_sql)
[ -n "$count" ] || fail "database '${PGDATABASE:-}' holds no count (table pingpong_counter, row 1): has pingpong started on it? no backup written"

# A count below the newest dump's is a loss (or a reset): a dump of it
# would become the newest, and in BACKUP_KEEP runs push out every dump from
# before. Refused, visibly, until someone decides.
newest=
for dump in "$dir"/pingpong-????????T??????.???Z.dump; do
  [ -e "$dump" ] && newest=$dump
done
if [ -n "$newest" ]; then
  before=$(pg_restore --file=- "$newest" 2>/dev/null | count_in_sql) || before=
  if [ -n "$before" ] && [ "$count" -lt "$before" ]; then
    fail "the count $count is below the newest backup's (${newest##*/}: $before): the data was lost or reset; no backup taken, so that the ones from before stay; restore one (k3d/restore.sh --postgres, restore.sh), or after a deliberate reset move the old dumps away"
  fi
fi

{ sync "$partial" && mv "$partial" "$dir/$name" && sync "$dir"; } 2>/dev/null ||
  fail "could not flush and rename $partial to $dir/$name (BACKUP_DIR full or read-only?); no backup written"

# Keep the newest BACKUP_KEEP (names sort by time).
set -- "$dir"/pingpong-????????T??????.???Z.dump
[ -e "$1" ] || set --
pruned=0
while [ "$#" -gt "$keep" ]; do
  rm -f "$1"
  shift
  pruned=$((pruned + 1))
done
line="backup $dir/$name: count $count, $(wc -c <"$dir/$name") bytes"
[ "$pruned" = 0 ] || line="$line; $pruned older removed"
printf '%s\n' "$line"
