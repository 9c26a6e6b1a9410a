"""Checks the folders of Kubernetes objects the way kubectl reads them.

Every way the README and the course deploy must work on a fresh cluster, one
command after another, as written:
- the seed document's, file by file:
    kubectl apply -f storage/persistentvolume.yaml
    kubectl apply -f storage/persistentvolumeclaim.yaml
    kubectl apply -f manifests/
- the course's by folder: kubectl apply -f storage/, then -f manifests/
- kubectl apply -k .          (the file mode)
- kubectl apply -k postgres/  (the PostgreSQL mode)
- kubectl apply -k postgres-ha/  (the count on CloudNativePG; the operator and
  its CRDs are installed before, from their release manifest)
kubectl reads a folder's .yaml/.yml/.json files in name order (Go's
filepath.Walk) and applies each object as it comes, so:
- every document in storage/ and manifests/ must be a Kubernetes object (a
  Kustomization there fails with `no matches for kind "Kustomization"`);
- a namespaced object must come after the Namespace it lives in, in the same
  command or an earlier one, unless that is `default`;
- each kustomization must list exactly the object files of its mode, so both
  ways deploy the same objects;
- the objects both modes share (the namespace, the Services, the Ingress)
  must be the same in both; postgres-ha/ holds the same objects as
  postgres/ (log-output, the PodDisruptionBudget and the log-output
  NetworkPolicy too), but for the Deployment and NetworkPolicy of pingpong,
  which point at the other database.
`kubectl kustomize` orders namespaces first itself; the -k sequences are
checked on its output.
Usage: python .ci/check-objects.py      (needs PyYAML and kubectl) ; exits 1 on any problem.
"""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "IngressClass", "CustomResourceDefinition", "PriorityClass"}
NOT_OBJECTS = {"Kustomization", "Component"}

problems = []


def files_of(target):
    """What `kubectl apply -f TARGET` reads, in its order."""
    path = ROOT / target
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    return [path]


def documents(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def check_sequence(name, commands):
    """Applies each command's objects in order, on a fresh cluster."""
    namespaces = {"default"}
    count = 0
    for command, objects in commands:
        for where, doc in objects:
            kind, meta = doc.get("kind"), doc.get("metadata") or {}
            if not doc.get("apiVersion") or not kind or not meta.get("name"):
                problems.append(f"{name}: {command}: {where}: not a Kubernetes object (apiVersion, kind and metadata.name are required)")
                continue
            if kind in NOT_OBJECTS:
                problems.append(f"{name}: {command}: {where}: a {kind} is not an object kubectl apply -f can apply")
                continue
            count += 1
            if kind == "Namespace":
                namespaces.add(meta["name"])
            elif kind not in CLUSTER_SCOPED:
                ns = meta.get("namespace", "default")
                if ns not in namespaces:
                    problems.append(f"{name}: {command}: {kind} {meta['name']} comes before its namespace {ns!r} exists")
    print(f"  {name}: {' ; '.join(c for c, _ in commands)}: {count} objects, each after its namespace")


def apply_f(*targets):
    commands = []
    for target in targets:
        objects = []
        for path in files_of(target):
            for index, doc in enumerate(documents(path)):
                objects.append((f"{path.relative_to(ROOT)} (document {index + 1})", doc))
        commands.append((f"kubectl apply -f {target}", objects))
    return commands


def apply_k(folder):
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / folder)], check=True, capture_output=True, text=True).stdout
    objects = [(f"object {i + 1}", d) for i, d in enumerate(d for d in yaml.safe_load_all(out) if d)]
    return [(f"kubectl apply -k {folder}", objects)]


check_sequence("the seed document's order", apply_f("storage/persistentvolume.yaml", "storage/persistentvolumeclaim.yaml", "manifests/"))
check_sequence("the course's folders", apply_f("storage/", "manifests/"))
check_sequence("the file mode", apply_k("."))
check_sequence("the PostgreSQL mode", apply_k("postgres/"))
check_sequence("the CloudNativePG mode", apply_k("postgres-ha/"))

# Each kustomization lists exactly its mode's object files.
for folder, object_files in ((".", files_of("storage/") + files_of("manifests/")),
                             ("postgres", [p for p in files_of("postgres/") if p.name != "kustomization.yaml"]),
                             ("postgres-ha", [p for p in files_of("postgres-ha/") if p.name != "kustomization.yaml"])):
    kustomization = yaml.safe_load((ROOT / folder / "kustomization.yaml").read_text())
    listed = {(ROOT / folder / r).resolve() for r in kustomization.get("resources", [])}
    wanted = {p.resolve() for p in object_files}
    if listed != wanted:
        problems.append(f"{folder}/kustomization.yaml lists {sorted(str(p.relative_to(ROOT)) for p in listed - wanted)} "
                        f"that are not its object files, and misses {sorted(str(p.relative_to(ROOT)) for p in wanted - listed)}")

# What both modes share is the same object in both.
def by_id(paths):
    return {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
            for p in paths for d in documents(ROOT / p)}


file_mode = by_id(["storage/persistentvolume.yaml", "manifests/services.yaml", "manifests/ingress.yaml"])
db_mode = by_id(["postgres/namespace.yaml", "postgres/services.yaml", "postgres/ingress.yaml"])
shared = sorted(set(file_mode) & set(db_mode))
for key in shared:
    if file_mode[key] != db_mode[key]:
        problems.append(f"{key[0]} {key[2]} differs between the file mode and postgres/")
if len(shared) != len(db_mode):
    problems.append(f"postgres/'s shared objects {sorted(set(db_mode) - set(file_mode))} are not in the file mode")
print(f"  shared by both modes, identical: {', '.join(f'{k} {n}' for k, _, n in shared)}")

# postgres-ha/ is postgres/ with another database: every object of one is in
# the other and the same, but for these, and each mode's database.
OTHER_DATABASE = {("Deployment", "pingpong", "pingpong"), ("NetworkPolicy", "pingpong", "pingpong")}
pg_files = [p.relative_to(ROOT) for p in files_of("postgres/") if p.name != "kustomization.yaml"]
ha_files = [p.relative_to(ROOT) for p in files_of("postgres-ha/") if p.name != "kustomization.yaml"]
pg_mode, ha_mode = by_id(pg_files), by_id(ha_files)
pg_database = {("StatefulSet", "pingpong", "postgres"), ("Service", "pingpong", "postgres"),
               ("NetworkPolicy", "pingpong", "postgres"), ("ConfigMap", "pingpong", "postgres-init"),
               ("StorageClass", None, "local-path-retain")}
ha_database = {("Cluster", "pingpong", "pingpong-db"), ("NetworkPolicy", "pingpong", "pingpong-db")}
for key in sorted(set(pg_mode) - pg_database - set(ha_mode)):
    problems.append(f"{key[0]} {key[2]} of postgres/ is missing from postgres-ha/")
for key in sorted(set(ha_mode) - ha_database - set(pg_mode)):
    problems.append(f"{key[0]} {key[2]} of postgres-ha/ is not in postgres/ (an object of that mode alone is listed in ha_database here)")
same = sorted((set(pg_mode) & set(ha_mode)) - OTHER_DATABASE)
for key in same:
    if pg_mode[key] != ha_mode[key]:
        problems.append(f"{key[0]} {key[2]} differs between postgres/ and postgres-ha/")
print(f"  shared by postgres/ and postgres-ha/, identical: {', '.join(f'{k} {n}' for k, _, n in same)}")

for problem in problems:
    print(f"check-objects: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print("every deploy sequence applies only objects, each after its namespace; the kustomizations list exactly their files")
