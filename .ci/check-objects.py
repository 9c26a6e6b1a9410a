"""Checks the folders of Kubernetes objects the way `kubectl apply -f` reads them.

The course applies `kubectl apply -f storage/` then `kubectl apply -f manifests/`.
kubectl reads every .yaml/.yml/.json file of a folder in name order (Go's
filepath.Walk) and applies each object as it comes, so:
- every document in those folders must be a Kubernetes object (a Kustomization
  there fails with `no matches for kind "Kustomization"`);
- a namespaced object must come after the Namespace it lives in, unless that is
  `default`;
- the root kustomization (`kubectl apply -k .`) must list exactly those files,
  so both ways deploy the same objects.
Usage: python .ci/check-objects.py      (needs PyYAML) ; exits 1 on any problem.
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ["storage", "manifests"]  # in the order the course applies them
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "IngressClass", "CustomResourceDefinition", "PriorityClass"}
NOT_OBJECTS = {"Kustomization", "Component"}

problems = []
namespaces = {"default"}
files = []
for folder in FOLDERS:
    # kubectl's order: file names compared byte by byte.
    for path in sorted(p for p in (ROOT / folder).iterdir() if p.suffix in (".yaml", ".yml", ".json")):
        files.append(path.relative_to(ROOT).as_posix())
        for index, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d is not None):
            where = f"{path.relative_to(ROOT)} (document {index + 1})"
            kind, meta = doc.get("kind"), doc.get("metadata") or {}
            if not doc.get("apiVersion") or not kind or not meta.get("name"):
                problems.append(f"{where}: not a Kubernetes object (apiVersion, kind and metadata.name are required)")
                continue
            if kind in NOT_OBJECTS:
                problems.append(f"{where}: a {kind} is not an object `kubectl apply -f {folder}/` can apply")
                continue
            if kind == "Namespace":
                namespaces.add(meta["name"])
            elif kind not in CLUSTER_SCOPED:
                ns = meta.get("namespace", "default")
                if ns not in namespaces:
                    problems.append(f"{where}: {kind} {meta['name']} is applied before its namespace {ns!r} exists")
            print(f"  {folder}: {path.name}: {kind} {meta.get('namespace', '-')}/{meta['name']}")

kustomization = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
listed = set(kustomization.get("resources", []))
if listed != set(files):
    problems.append(f"kustomization.yaml lists {sorted(listed - set(files))} that are not object files, "
                    f"and misses {sorted(set(files) - listed)}")

for problem in problems:
    print(f"check-objects: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{len(files)} files in {' then '.join(FOLDERS)}: all Kubernetes objects, namespaces first; "
      "kustomization.yaml lists exactly them")
