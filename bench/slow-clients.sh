#!/usr/bin/env bash
# Slow clients against pingpong's connection bound (1024): slowhttptest
# (Debian's) opens 4,000 connections of one kind, slowloris (-H), slow body
# (-B) or slow read (-X, with 10 pipelined requests per connection so that
# answers pile up unread), for 30 s; meanwhile a probe sends a normal ping
# every 0.5 s over a fresh connection. Prints, per attack, the probe pings
# answered and their slowest time, the connections open and evicted as
# pingpong's own metrics saw them, and pingpong's RSS after. A measurement,
# not a test: the figures go to docs/reliability.md.
# Usage: bench/slow-clients.sh      (installs slowhttptest if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v slowhttptest >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slowhttptest >/dev/null
}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin pingpong
bin=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
work=$(mktemp -d)
PORT=3931
COUNTER_FILE=$work/counter.txt PORT=$PORT RUST_LOG=warn "$bin/pingpong" & pp=$!
trap 'kill $pp 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.05; done

metric() { curl -fs "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
printf '| attack | its connections at the end | probe pings answered | slowest probe | open connections (highest seen) | evicted | RSS after |\n| --- | --- | --- | --- | --- | --- | --- |\n'
for attack in -H -B -X; do
  extra=()
  [[ $attack == -X ]] && extra=(-k 10 -n 5 -w 1 -y 16 -z 4) # -k: at most 10
  evicted_before=$(metric pingpong_http_connections_evicted_total)
  slowhttptest "$attack" -c 4000 -r 400 -i 10 -l 30 -u "http://127.0.0.1:$PORT/pingpong" -t GET -p 3 ${extra[@]+"${extra[@]}"} \
    >"$work/slow.log" 2>&1 &
  slow=$!
  sleep 10 # the attack at full strength
  answered=0 slowest=0 highest=0
  for _ in $(seq 40); do
    t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 "http://127.0.0.1:$PORT/pingpong" || true)
    [[ ${t%% *} == 200 ]] && answered=$((answered + 1))
    slowest=$(awk -v a="$slowest" -v b="${t##* }" 'BEGIN {print (b > a ? b : a)}')
    open=$(metric pingpong_http_connections_open || echo 0)
    ((open > highest)) && highest=$open
    sleep 0.5
  done
  wait $slow || true
  # slowhttptest's own last count of its connections, as a check that it ran.
  seen=$(tr '\r' '\n' <"$work/slow.log" | sed 's/\x1b\[[0-9;]*m//g' | awk '/^connected:/ {c=$2} /^closed:/ {d=$2} END {print c+0 " connected, " d+0 " closed"}')
  rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pp/status")
  evicted=$(($(metric pingpong_http_connections_evicted_total) - evicted_before))
  printf '| slowhttptest %s, 4000 connections | %s | %d of 40 | %.3f s | %d | %d | %s |\n' \
    "$attack" "$seen" "$answered" "$slowest" "$highest" "$evicted" "$rss"
done
