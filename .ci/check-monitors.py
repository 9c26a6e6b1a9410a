"""Validates the monitoring objects offline against the Prometheus Operator's
own CRD schemas (monitoring/schemas/, copied from prometheus-operator): each
PodMonitor and PrometheusRule of monitoring/ against the openAPIV3Schema of
its CRD's served version, unknown fields rejected (as `kubectl apply
--validate=strict` does: the schema is closed wherever it lists properties
and does not say x-kubernetes-preserve-unknown-fields).
Usage: python .ci/check-monitors.py      (needs PyYAML and jsonschema) ; exits 1 on any problem.
"""

import copy
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "monitoring" / "schemas"


def closed(schema):
    """The schema with additionalProperties false where it lists properties."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


schemas = {}
for crd_file in SCHEMAS.glob("*.yaml"):
    crd = yaml.safe_load(crd_file.read_text())
    kind = crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        if version.get("served"):
            api = f"{crd['spec']['group']}/{version['name']}"
            schemas[(api, kind)] = closed(version["schema"]["openAPIV3Schema"])

problems, checked = [], 0
for path in sorted((ROOT / "monitoring").glob("*.yaml")):
    for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key[1] not in ("PodMonitor", "PrometheusRule"):
            continue
        schema = schemas.get(key)
        if schema is None:
            problems.append(f"{path.name}: no CRD schema for {key}")
            continue
        checked += 1
        # metadata is the API server's, not the CRD's: only its shape is checked.
        body = {k: v for k, v in doc.items() if k != "metadata"}
        schema = {**schema, "properties": {k: v for k, v in schema["properties"].items() if k != "metadata"}}
        for error in jsonschema.Draft7Validator(schema).iter_errors(body):
            where = "/".join(str(p) for p in error.absolute_path) or "(top)"
            problems.append(f"{path.name}: {key[1]} {doc['metadata']['name']}: {where}: {error.message}")
        print(f"  {path.name}: {key[1]} {doc['metadata']['namespace']}/{doc['metadata']['name']} against {key[0]}")

for problem in problems:
    print(f"check-monitors: {problem}", file=sys.stderr)
if problems or not checked:
    sys.exit(1)
print(f"{checked} objects valid against the Prometheus Operator's CRD schemas")
