#!/usr/bin/env bash
# This pingpong against a build of an earlier commit, GET /pingpong on the
# file store, at 1, 4, 16, 64 and 256 connections: ROUNDS paired rounds of
# 4 s per count (the order alternated), each round's ratio this / that;
# prints a table of the medians and the rounds' range. How a change of
# design is measured since issue 28: a build of the commit before it (git
# worktree), never a switch in the product's code.
# Usage: bench/against.sh [REV]    (REV default HEAD~1; ROUNDS=5; needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-HEAD~1} ROUNDS=${ROUNDS:-5}
OUT=bench/out-against PORT_THIS=3921 PORT_THAT=3922
step() { printf '==> %s\n' "$*" >&2; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

step "cargo build --release (this)"
cargo build --release --quiet --bin pingpong
TARGET=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
src=$TARGET/bench-src/against
git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
git worktree prune
git worktree add --quiet --detach "$src" "$REV"
step "cargo build --release of pingpong at $REV ($(git rev-parse --short "$REV"))"
CARGO_TARGET_DIR=$TARGET/bench-against cargo build --release --quiet --manifest-path "$src/Cargo.toml" -p pingpong --bin pingpong

rm -rf "$OUT" && mkdir -p "$OUT/this" "$OUT/that"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
COUNTER_FILE=$OUT/this/counter.txt PORT=$PORT_THIS RUST_LOG=warn "$TARGET/release/pingpong" & pids+=($!)
COUNTER_FILE=$OUT/that/counter.txt PORT=$PORT_THAT RUST_LOG=warn "$TARGET/bench-against/release/pingpong" & pids+=($!)
for port in $PORT_THIS $PORT_THAT; do
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
done
rps() { wrk -t"$(($1 < 2 ? 1 : 2))" -c"$1" -d4s "http://127.0.0.1:$2/pingpong" | awk '/Requests\/sec/ {print $2}'; }

printf '| connections | this req/s | %s req/s | this / %s, median of %s rounds (range) |\n' "$REV" "$REV" "$ROUNDS"
printf '| --- | --- | --- | --- |\n'
for c in 1 4 16 64 256; do
  : >"$OUT/this_$c" && : >"$OUT/that_$c" && : >"$OUT/ratio_$c"
  for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then a=$(rps "$c" $PORT_THIS); b=$(rps "$c" $PORT_THAT); else b=$(rps "$c" $PORT_THAT); a=$(rps "$c" $PORT_THIS); fi
    echo "$a" >>"$OUT/this_$c" && echo "$b" >>"$OUT/that_$c"
    awk -v a="$a" -v b="$b" 'BEGIN {print a / b}' >>"$OUT/ratio_$c"
  done
  median() { sort -g "$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
  printf '| %s | %.0f | %.0f | %.2fx (%.2f–%.2f) |\n' "$c" "$(median "$OUT/this_$c")" "$(median "$OUT/that_$c")" \
    "$(median "$OUT/ratio_$c")" "$(sort -g "$OUT/ratio_$c" | head -n 1)" "$(sort -g "$OUT/ratio_$c" | tail -n 1)"
done
