"""Validates custom resources offline against their operator's own CRD
schemas, kept in the repository: every object of FILE… whose API group one
of the CRDs in SCHEMAS defines is checked against the openAPIV3Schema of that
CRD's served version, unknown fields rejected (as `kubectl apply
--validate=strict` does: the schema is closed wherever it lists properties
and does not say x-kubernetes-preserve-unknown-fields). Objects of other
groups (Deployments, Services, …) are left to kubernetes-validate.
  - monitoring/: the PodMonitors and the PrometheusRule against the
    Prometheus Operator's CRDs (monitoring/schemas/, test-monitoring.sh);
  - postgres-ha/: the Cluster against CloudNativePG's (postgres-ha/schemas/,
    .ci/run).
What it cannot check, it names: the CRD's CEL rules
(x-kubernetes-validations) are listed for every field of the object they
apply to, not evaluated, and the operator's admission webhook is not run.
Usage: python .ci/check-custom-resources.py SCHEMAS FILE...   (needs PyYAML and jsonschema)
       exits 1 on any problem, or when no object was checked.
"""

import copy
import sys
from pathlib import Path

import jsonschema
import yaml


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


def cel_rules(schema, body, path=()):
    """(path, rule) of each CEL rule on a field the object has."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield "/".join(path) or "(top)", rule["rule"]
    if isinstance(body, dict):
        for key, value in body.items():
            if key in schema.get("properties", {}):
                yield from cel_rules(schema["properties"][key], value, path + (key,))
            elif isinstance(schema.get("additionalProperties"), dict):
                yield from cel_rules(schema["additionalProperties"], value, path + (key,))
    elif isinstance(body, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(body):
            yield from cel_rules(schema["items"], value, path + (str(index),))


def main(schemas_dir, files):
    schemas, groups = {}, set()
    for crd_file in sorted(schemas_dir.glob("*.yaml")):
        crd = yaml.safe_load(crd_file.read_text())
        groups.add(crd["spec"]["group"])
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                api = f"{crd['spec']['group']}/{version['name']}"
                schemas[(api, crd["spec"]["names"]["kind"])] = closed(version["schema"]["openAPIV3Schema"])
    if not schemas:
        print(f"check-custom-resources: no CRD in {schemas_dir}", file=sys.stderr)
        return 1

    problems, checked = [], 0
    for path in files:
        for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
            key = (doc.get("apiVersion", ""), doc.get("kind"))
            if key[0].split("/")[0] not in groups:
                continue
            schema = schemas.get(key)
            if schema is None:
                problems.append(f"{path}: no CRD schema for {key} in {schemas_dir}")
                continue
            checked += 1
            name = f"{key[1]} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}"
            # metadata is the API server's ObjectMeta, not the CRD's: left out here.
            body = {k: v for k, v in doc.items() if k != "metadata"}
            schema = {**schema, "properties": {k: v for k, v in schema["properties"].items() if k != "metadata"},
                      "required": [k for k in schema.get("required", []) if k != "metadata"]}
            for error in jsonschema.Draft7Validator(schema).iter_errors(body):
                where = "/".join(str(p) for p in error.absolute_path) or "(top)"
                problems.append(f"{path}: {name}: {where}: {error.message}")
            print(f"  {path}: {name} against {key[0]}")
            for where, rule in cel_rules(schema, body):
                print(f"    not evaluated here (a CEL rule, for the API server): {where}: {rule}")

    for problem in problems:
        print(f"check-custom-resources: {problem}", file=sys.stderr)
    if problems or not checked:
        if not checked:
            print(f"check-custom-resources: no object of {', '.join(sorted(groups))} was checked "
                  f"in {' '.join(str(f) for f in files)}", file=sys.stderr)
        return 1
    print(f"{checked} objects valid against the CRD schemas of {schemas_dir}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__.split("Usage: ")[1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), [Path(f) for f in sys.argv[2:]]))
