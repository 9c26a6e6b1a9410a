#!/usr/bin/env bash
# The monitoring suite: the monitors, the alert rules and the dashboard of
# monitoring/, checked as kube-prometheus-stack and any Prometheus would
# take them:
#   - the generated PrometheusRule and dashboard ConfigMap are made from
#     their sources (monitoring/generate.py --check);
#   - the PodMonitors and the PrometheusRule against the Prometheus
#     Operator's own CRD schemas, unknown fields refused
#     (.ci/check-custom-resources.py monitoring/schemas …);
#   - `promtool check rules` on the rules file and on the PrometheusRule's
#     groups, `promtool test rules` on a test file per alert;
#   - every dashboard panel's query on the real Prometheus scraping the real
#     processes under load (monitoring/test-dashboard.py).
# Usage: ./test-monitoring.sh    (installs Debian's prometheus, and PyYAML and
#                                 jsonschema into .venv/, if missing)
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "==> installing Debian's prometheus (the server and promtool)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
python=$PWD/.venv/bin/python
if ! "$python" -c 'import yaml, jsonschema' 2>/dev/null; then
  echo "==> installing PyYAML and jsonschema into .venv/"
  [[ -x $python ]] || python3 -m venv .venv
  "$python" -m pip install -q --disable-pip-version-check pyyaml jsonschema
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> the generated objects are made from their sources"
"$python" monitoring/generate.py --check
echo "==> the PodMonitors and the PrometheusRule against the Prometheus Operator's CRDs"
"$python" .ci/check-custom-resources.py monitoring/schemas monitoring/*.yaml
echo "==> promtool check rules (the rules file, and the PrometheusRule's groups)"
"$python" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); yaml.safe_dump({"groups": d["spec"]["groups"]}, open(sys.argv[2], "w"))' \
  monitoring/prometheusrule.yaml "$work/prometheusrule-groups.yaml"
promtool check rules monitoring/rules/pingpong.rules.yaml "$work/prometheusrule-groups.yaml"
echo "==> promtool test rules (a test file per alert)"
(cd monitoring/tests && promtool test rules ./*.test.yaml)
echo "==> every dashboard query on the real Prometheus, the real processes under load"
cargo build --quiet --bin pingpong --bin log-output
bin=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug
python3 monitoring/test-dashboard.py "$bin" "$@"
