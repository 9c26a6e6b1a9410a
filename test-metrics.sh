#!/usr/bin/env bash
# The metrics suite: every process's GET /metrics read by Prometheus's own
# parser (the Prometheus project's Python client, strict OpenMetrics) and
# checked against what the test did: pings, injected failures (strace), log
# entries, requests; and the classic text format linted by
# `promtool check metrics`.
# Usage: ./test-metrics.sh     (installs prometheus-client into .venv/, and strace and
#                              promtool (Debian's prometheus) if missing)
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v strace >/dev/null; then
  echo "==> installing strace"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
fi
if ! command -v promtool >/dev/null; then
  echo "==> installing promtool (Debian's prometheus)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
python=$PWD/.venv/bin/python
if ! "$python" -c 'import prometheus_client' 2>/dev/null; then
  echo "==> installing prometheus-client into .venv/"
  [[ -x $python ]] || python3 -m venv .venv
  "$python" -m pip install -q --disable-pip-version-check prometheus-client
fi
echo "==> cargo test --test metrics -- --ignored (pingpong and log-output)"
PROMETHEUS_PARSER_PYTHON=$python cargo test -p pingpong -p log-output --test metrics -- --ignored
