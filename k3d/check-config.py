"""Validates k3d/cluster.yaml against k3d's own JSON schema (k3d/schema/, copied from k3d-io/k3d).

Usage: python k3d/check-config.py [CONFIG] [SCHEMA]   (needs PyYAML and jsonschema)
"""

import json
import sys
from pathlib import Path

import jsonschema
import yaml

root = Path(__file__).resolve().parent.parent
config = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "k3d" / "cluster.yaml"
schema = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "k3d" / "schema" / "k3d-config-v1alpha5.schema.json"

document = yaml.safe_load(config.read_text())
validator = jsonschema.Draft7Validator(json.loads(schema.read_text()), format_checker=jsonschema.FormatChecker())
errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
for error in errors:
    print(f"{config}: {'/'.join(map(str, error.path)) or '(top)'}: {error.message}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"{config}: valid against {schema.name}")
