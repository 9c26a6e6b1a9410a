#!/bin/sh
# Restores a backup of the count in PostgreSQL (backup.sh's dumps), as the
# Job postgres-restore runs it (k3d/restore.sh --postgres, either database
# mode) and as ./test-backup.sh runs it on a real server, never answering a
# number twice (docs/contract.md, "Backups and restore"):
#   - a dump is older than the last answered ping, so the count is raised to
#     the dump's count plus 10,000,000 (the highest rate pingpong could count
#     at) for every second since the dump was taken, by the database's clock;
#   - or, with RESTORE_FLOOR, to that number (the operator's word that no
#     pong at or above it was answered), and never below the dump's count;
#   - never lowered: a count the database still holds that is higher stays.
# The dump is read whole before anything is written, and the table is
# replaced and raised in one transaction, under its lock, so a pingpong
# that runs meanwhile waits (and answers 503) rather than count from the
# dump's lower value. One line out; any failure exits non-zero with one line.
# Environment: libpq's PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD;
# BACKUP_DIR (default /backups); RESTORE_FROM (a dump's file name; default
# the newest); RESTORE_FLOOR (optional).
set -eu
export LC_ALL=C # names sort by time in a glob

# The highest rate pingpong could count at, pings a second: the same bound
# as the file mode's (log-output/src/backup.rs, MAX_RATE).
MAX_RATE=10000000

dir=${BACKUP_DIR:-/backups}
floor=${RESTORE_FLOOR:-}
fail() { printf 'restore: %s\n' "$*" >&2; exit 1; }
first_line() { printf '%s\n' "$1" | head -n 1; }
older="name an older one with RESTORE_FROM (k3d/restore.sh --from)"
case $floor in *[!0-9]*) fail "RESTORE_FLOOR must be a whole number (every pong answered was below it), got '$floor'" ;; esac

if [ -n "${RESTORE_FROM:-}" ]; then
  name=$RESTORE_FROM
else
  name=
  for dump in "$dir"/pingpong-????????T??????.???Z.dump; do
    [ -e "$dump" ] && name=${dump##*/}
  done
  [ -n "$name" ] || fail "no backup at all in $dir: \`ls $dir\` lists them"
fi
case $name in */* | .*) fail "RESTORE_FROM must be the name of a dump in $dir, such as pingpong-20261206T021000.123Z.dump, got '$name'" ;; esac
[ -f "$dir/$name" ] || fail "no backup $name in $dir: \`ls $dir\` lists them"
taken=${name#pingpong-}
taken=${taken%.dump}
case $taken in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9].[0-9][0-9][0-9]Z) ;;
  *) fail "backup $name is not named by its time (pingpong-<YYYYMMDDTHHMMSS.mmmZ>.dump), which the restore's bound needs; nothing was restored" ;;
esac

# Read the whole dump into SQL first: a truncated or foreign file stops here.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
err=$(pg_restore --clean --if-exists --no-owner --no-privileges --file="$work/dump.sql" "$dir/$name" 2>&1) ||
  fail "backup $dir/$name is damaged: $(first_line "$err"); nothing was restored: $older"
count=$(awk -F '\t' '/^COPY public\.pingpong_counter \(id, count\)/ { copy = 1; next } copy && $1 == "1" { print $2; exit }' "$work/dump.sql")
case $count in '' | *[!0-9]*) fail "backup $dir/$name is damaged: it holds no count (table pingpong_counter, row 1); nothing was restored" ;; esac

cat >"$work/restore.sql" <<SQL
\set ON_ERROR_STOP on
BEGIN;
SELECT set_config('restore.taken', :'taken', true), set_config('restore.floor', :'floor', true) \gset
CREATE TEMP TABLE restore_found (count bigint) ON COMMIT DROP;
DO \$\$ BEGIN
  IF to_regclass('public.pingpong_counter') IS NOT NULL THEN
    LOCK TABLE public.pingpong_counter IN ACCESS EXCLUSIVE MODE;
    INSERT INTO pg_temp.restore_found SELECT count FROM public.pingpong_counter WHERE id = 1;
  END IF;
END \$\$;
\i $work/dump.sql
CREATE TEMP TABLE restore_result (line text) ON COMMIT DROP;
DO \$\$
DECLARE
  backup bigint;
  found bigint := (SELECT max(count) FROM pg_temp.restore_found);
  taken timestamptz := current_setting('restore.taken')::timestamptz;
  floor text := current_setting('restore.floor');
  seconds bigint;
  target bigint;
  rule text;
BEGIN
  SELECT count INTO STRICT backup FROM public.pingpong_counter WHERE id = 1;
  IF floor <> '' THEN
    target := GREATEST(backup, floor::bigint);
    rule := 'RESTORE_FLOOR ' || floor;
  ELSE
    IF taken > now() THEN
      RAISE EXCEPTION 'backup taken at %, after the database''s clock (%): the clocks disagree; give RESTORE_FLOOR (a number above every pong answered) instead; nothing was restored', taken, now();
    END IF;
    seconds := ceil(extract(epoch FROM now() - taken))::bigint;
    target := backup + seconds * $MAX_RATE;
    rule := '$MAX_RATE a second for the ' || seconds || ' s since the backup';
  END IF;
  UPDATE public.pingpong_counter SET count = GREATEST(found, target) WHERE id = 1;  -- GREATEST skips a NULL
  INSERT INTO pg_temp.restore_result VALUES (CASE
    WHEN found > target THEN format('the count stays %s, above the rule''s %s (%s)', found, target, rule)
    ELSE format('the count is now %s (%s; the database held %s)', target, rule, COALESCE(found::text, 'no count')) END);
END \$\$;
SELECT line FROM pg_temp.restore_result \gset
COMMIT;
\echo :line
SQL
out=$(psql --no-psqlrc --quiet --tuples-only --no-align -v taken="$taken" -v floor="$floor" -f "$work/restore.sql" 2>&1) ||
  fail "backup $dir/$name was not restored: $(printf '%s\n' "$out" | grep -m 1 -E 'ERROR|FATAL|error' || first_line "$out")"
printf 'restored backup %s (count %s): %s\n' "$name" "$count" "$(printf '%s\n' "$out" | tail -n 1)"
