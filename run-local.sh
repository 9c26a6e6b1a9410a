#!/usr/bin/env bash
# Runs the whole system on this machine, no cluster: pingpong, the log-output
# writer and reader, all sharing ./files/ as the pod volume would.
# Usage: ./run-local.sh          (Ctrl-C stops all three)
set -euo pipefail
cd "$(dirname "$0")"

PINGPONG_PORT=${PINGPONG_PORT:-3000}
READER_PORT=${READER_PORT:-8080}
WRITER_METRICS_PORT=${WRITER_METRICS_PORT:-9090}
export COUNTER_FILE=${COUNTER_FILE:-files/pingpong_counter.txt}
export LOG_FILE=${LOG_FILE:-files/output.log}

echo "==> building (cargo build --release)"
cargo build --release --quiet --bin pingpong --bin log-output
# Where cargo put them: target/, or CARGO_TARGET_DIR, or a build.target-dir setting.
bin=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  # (${pids[@]+…}: an empty array is "unbound" to bash before 4.4, macOS's 3.2 included)
  kill -TERM ${pids[@]+"${pids[@]}"} 2>/dev/null || true
  wait ${pids[@]+"${pids[@]}"} 2>/dev/null || true
}
trap stop INT TERM EXIT

PORT=$PINGPONG_PORT "$bin/pingpong" & pids+=($!)
METRICS_PORT=$WRITER_METRICS_PORT "$bin/log-output" writer & pids+=($!)
PORT=$READER_PORT "$bin/log-output" reader & pids+=($!)

# Wait (with a deadline of 10 s) until all three answer; a process that could
# not start (port taken, say) has printed why: stop the others.
for url in "http://127.0.0.1:$PINGPONG_PORT/readyz" "http://127.0.0.1:$READER_PORT/readyz" \
  "http://127.0.0.1:$WRITER_METRICS_PORT/healthz"; do
  ok=no
  for _ in $(seq 100); do
    if curl -fs "$url" >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.1
  done
  if [[ $ok == no ]]; then
    echo "run-local.sh: $url did not answer; see the error above" >&2
    exit 1
  fi
done

cat <<MSG

==> running; the shared volume is ./files/
    curl localhost:$PINGPONG_PORT/pingpong      # pong N, counted durably
    curl localhost:$PINGPONG_PORT/pings         # the count, without counting
    curl localhost:$READER_PORT/                # latest log entry
    curl 'localhost:$READER_PORT/log?tail=5'    # last five entries
    curl localhost:$PINGPONG_PORT/metrics       # Prometheus metrics: pingpong,
    curl localhost:$WRITER_METRICS_PORT/metrics       #   the writer,
    curl localhost:$READER_PORT/metrics         #   the reader
    Ctrl-C stops all three.

MSG
wait
