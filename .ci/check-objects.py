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
  ways deploy the same objects, and each component (postgres/backup/, the
  pg_dump backups, which postgres/ and postgres-ha/ both take) exactly its
  own;
- the objects both modes share (the namespace, the Services, the Ingress)
  must be the same in both; postgres-ha/ holds the same objects as
  postgres/ (log-output, the PodDisruptionBudget and the log-output
  NetworkPolicy too), but for the Deployment and NetworkPolicy of pingpong
  and the backups' NetworkPolicy, which point at the other database;
- the backups' component renders the same objects in both database modes,
  but for what postgres-ha/'s patch of the CronJob may change (the
  database's address and Secret, the image, the placement hint, the checkov
  skips), and in each mode the CronJob dumps the database pingpong counts
  in: PGHOST, PGPORT, PGUSER and PGDATABASE as pingpong's DATABASE_URL,
  PGPASSWORD from pingpong's Secret, and the database's own image (a
  pg_dump older than its server refuses it);
- each restore Job of k3d/ (applied by k3d/restore.sh with kubectl apply
  -f) runs the pod of its mode's backup CronJob, but for its name, its
  command and the RESTORE_* settings, and every claim and ConfigMap it
  mounts is one its mode makes;
- in every mode, every container of every Deployment has one liveness
  mechanism: an httpGet of /healthz on a port it declares (the writer's is
  its metrics port; `log-output alive` stays for the contract only), and
  no probe runs a command.
`kubectl kustomize` orders namespaces first itself; the -k sequences are
checked on its output.
Usage: python .ci/check-objects.py      (needs PyYAML and kubectl) ; exits 1 on any problem.
"""

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

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


_kustomized = {}


def apply_k(folder):
    if folder not in _kustomized:
        out = subprocess.run(["kubectl", "kustomize", str(ROOT / folder)], check=True, capture_output=True, text=True).stdout
        _kustomized[folder] = [d for d in yaml.safe_load_all(out) if d]
    objects = [(f"object {i + 1}", d) for i, d in enumerate(_kustomized[folder])]
    return [(f"kubectl apply -k {folder}", objects)]


def made_by(folder):
    """The objects `kubectl kustomize FOLDER` makes."""
    return [doc for _, doc in apply_k(folder)[0][1]]


check_sequence("the seed document's order", apply_f("storage/persistentvolume.yaml", "storage/persistentvolumeclaim.yaml", "manifests/"))
check_sequence("the course's folders", apply_f("storage/", "manifests/"))
check_sequence("the file mode", apply_k("."))
check_sequence("the PostgreSQL mode", apply_k("postgres/"))
check_sequence("the CloudNativePG mode", apply_k("postgres-ha/"))

# Each kustomization lists exactly its mode's object files, and each
# component its own; both database modes take the backups' component.
BACKUP_COMPONENT = "postgres/backup"
for folder, object_files, components in (
        (".", files_of("storage/") + files_of("manifests/"), set()),
        ("postgres", [p for p in files_of("postgres/") if p.name != "kustomization.yaml"], {BACKUP_COMPONENT}),
        ("postgres-ha", [p for p in files_of("postgres-ha/") if p.name != "kustomization.yaml"], {BACKUP_COMPONENT}),
        (BACKUP_COMPONENT, [p for p in files_of(BACKUP_COMPONENT) if p.name != "kustomization.yaml"], set())):
    kustomization = yaml.safe_load((ROOT / folder / "kustomization.yaml").read_text())
    listed = {(ROOT / folder / r).resolve() for r in kustomization.get("resources", [])}
    wanted = {p.resolve() for p in object_files}
    if listed != wanted:
        problems.append(f"{folder}/kustomization.yaml lists {sorted(str(p.relative_to(ROOT)) for p in listed - wanted)} "
                        f"that are not its object files, and misses {sorted(str(p.relative_to(ROOT)) for p in wanted - listed)}")
    taken = {str((ROOT / folder / c).resolve().relative_to(ROOT)) for c in kustomization.get("components", [])}
    if taken != components:
        problems.append(f"{folder}/kustomization.yaml takes the components {sorted(taken)}, not {sorted(components)}")

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
OTHER_DATABASE = {("Deployment", "pingpong", "pingpong"), ("NetworkPolicy", "pingpong", "pingpong"),
                  ("NetworkPolicy", "pingpong", "postgres-backup")}
pg_files = [p.relative_to(ROOT) for p in files_of("postgres/") if p.name != "kustomization.yaml"]
ha_files = [p.relative_to(ROOT) for p in files_of("postgres-ha/") if p.name != "kustomization.yaml"]
pg_mode, ha_mode = by_id(pg_files), by_id(ha_files)
pg_database = {("StatefulSet", "pingpong", "postgres"), ("Service", "pingpong", "postgres"),
               ("NetworkPolicy", "pingpong", "postgres"), ("ConfigMap", "pingpong", "postgres-init")}
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

# The backups' component: the same objects in both database modes, the
# CronJob but for what postgres-ha/'s patch may change.
def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def without_database(cronjob):
    """The CronJob without what a database mode may set: its checkov skips
    (the image decides which apply), the image, the database's address and
    Secret, the placement hint (the database's pod label)."""
    cronjob = yaml.safe_load(yaml.safe_dump(cronjob))  # a copy
    annotations = cronjob["metadata"].get("annotations", {})
    for key in [k for k in annotations if k.startswith("checkov.io/skip")]:
        del annotations[key]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod.pop("affinity", None)
    for container in pod["containers"]:
        container.pop("image", None)
        container["env"] = [e for e in container.get("env", []) if e["name"] not in ("PGHOST", "PGPASSWORD")]
    return cronjob


component_ids = set(by_id([p.relative_to(ROOT) for p in files_of(BACKUP_COMPONENT) if p.name != "kustomization.yaml"]))
component_ids |= {("ConfigMap", c.get("namespace"), c["name"])
                  for c in yaml.safe_load((ROOT / BACKUP_COMPONENT / "kustomization.yaml").read_text()).get("configMapGenerator", [])}
rendered = {mode: {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in made_by(mode)}
            for mode in ("postgres/", "postgres-ha/")}
for key in sorted(component_ids, key=str):
    pg_object, ha_object = (rendered[mode].get(key) for mode in ("postgres/", "postgres-ha/"))
    if pg_object is None or ha_object is None:
        problems.append(f"{key[0]} {key[2]} of {BACKUP_COMPONENT}/ is not made by kubectl kustomize of both postgres/ and postgres-ha/")
    elif key[0] == "CronJob":
        if without_database(pg_object) != without_database(ha_object):
            problems.append(f"CronJob {key[2]}: postgres-ha/'s patch changes more than the image, PGHOST, PGPASSWORD, the affinity and the checkov skips")
    elif pg_object != ha_object:
        problems.append(f"{key[0]} {key[2]} of {BACKUP_COMPONENT}/ differs between kubectl kustomize postgres/ and postgres-ha/")
print(f"  {BACKUP_COMPONENT}/ in both database modes, identical (the CronJob but for its database): "
      f"{', '.join(f'{k} {n}' for k, _, n in sorted(component_ids, key=str))}")

# In each mode, the CronJob dumps the database pingpong counts in, with the
# database's own client tools.
for mode, database in (("postgres/", "the StatefulSet postgres"), ("postgres-ha/", "the Cluster pingpong-db")):
    made = rendered[mode]
    cronjob = made.get(("CronJob", "pingpong", "postgres-backup"))
    pingpong = made.get(("Deployment", "pingpong", "pingpong"))
    if cronjob is None or pingpong is None:
        problems.append(f"kubectl kustomize {mode}: no CronJob postgres-backup or no Deployment pingpong")
        continue
    backup = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    app = next(c for c in pingpong["spec"]["template"]["spec"]["containers"] if c["name"] == "pingpong")
    url = urlsplit(env_of(app)["DATABASE_URL"]["value"])
    wanted = {"PGHOST": url.hostname, "PGPORT": str(url.port or 5432), "PGUSER": url.username,
              "PGDATABASE": url.path.lstrip("/")}
    env = env_of(backup)
    for name, value in wanted.items():
        if env.get(name, {}).get("value") != value:
            problems.append(f"kubectl kustomize {mode}: the CronJob's {name} is {env.get(name, {}).get('value')!r}, "
                            f"not {value!r} as pingpong's DATABASE_URL")
    if env.get("PGPASSWORD", {}).get("valueFrom") != env_of(app).get("PGPASSWORD", {}).get("valueFrom"):
        problems.append(f"kubectl kustomize {mode}: the CronJob's PGPASSWORD does not come from pingpong's Secret and key")
    if mode == "postgres/":
        statefulset = made[("StatefulSet", "pingpong", "postgres")]
        image = next(c["image"] for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "postgres")
    else:
        image = made[("Cluster", "pingpong", "pingpong-db")]["spec"]["imageName"]
    if backup["image"] != image:
        problems.append(f"kubectl kustomize {mode}: the CronJob runs {backup['image']}, not the image of {database} ({image})")
    print(f"  kubectl kustomize {mode}: the CronJob dumps {url.username}@{url.hostname}:{url.port or 5432}/{url.path.lstrip('/')}"
          f" as pingpong counts there, with the image of {database}")

# Each restore Job runs its mode's backup pod: what makes a backup work
# there (the user, the volumes, the environment, the policy's label set)
# makes the restore work.
def restore_pod(spec):
    """A pod spec without what a restore may change: the containers' names,
    commands and arguments, and the RESTORE_* settings."""
    spec = yaml.safe_load(yaml.safe_dump(spec))  # a copy
    for container in spec["containers"]:
        for key in ("name", "command", "args"):
            container.pop(key, None)
        container["env"] = [e for e in container.get("env", []) if not e["name"].startswith("RESTORE_")]
    return spec


for job_file, mode, cronjob_name in (("k3d/restore-file-job.yaml", ".", "file-backup"),
                                     ("k3d/restore-postgres-job.yaml", "postgres/", "postgres-backup"),
                                     ("k3d/restore-postgres-ha-job.yaml", "postgres-ha/", "postgres-backup")):
    made = made_by(mode)
    cronjob = next((d for d in made if d["kind"] == "CronJob" and d["metadata"]["name"] == cronjob_name), None)
    jobs = documents(ROOT / job_file)
    if cronjob is None or len(jobs) != 1 or jobs[0].get("kind") != "Job":
        problems.append(f"{job_file}: expected one Job, and the CronJob {cronjob_name} in kubectl kustomize {mode}")
        continue
    pod = jobs[0]["spec"]["template"]["spec"]
    if restore_pod(pod) != restore_pod(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]):
        problems.append(f"{job_file}: its pod is not the CronJob {cronjob_name}'s (but for names, command, args and RESTORE_*)")
    names = {(d["kind"], d["metadata"]["name"]) for d in made}
    for volume in pod.get("volumes", []):
        if "persistentVolumeClaim" in volume and ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) not in names:
            problems.append(f"{job_file}: the claim {volume['persistentVolumeClaim']['claimName']} is not made by kubectl kustomize {mode}")
        if "configMap" in volume and ("ConfigMap", volume["configMap"]["name"]) not in names:
            problems.append(f"{job_file}: the ConfigMap {volume['configMap']['name']} is not made by kubectl kustomize {mode} (a hash suffix?)")
    print(f"  {job_file}: the pod of the CronJob {cronjob_name}, its claims and ConfigMaps made by kubectl kustomize {mode}")

# One liveness mechanism: /healthz over HTTP, on a port the container serves.
for mode in (".", "postgres/", "postgres-ha/"):
    for deployment in (d for d in made_by(mode) if d["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            where = f"kubectl kustomize {mode}: {deployment['metadata']['name']}/{container['name']}"
            ports = {p["containerPort"] for p in container.get("ports", [])} | {p.get("name") for p in container.get("ports", [])}
            live = container.get("livenessProbe", {}).get("httpGet", {})
            if live.get("path") != "/healthz" or live.get("port") not in ports:
                problems.append(f"{where}: its liveness probe is not an httpGet of /healthz on a port it declares")
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                if "exec" in container.get(kind, {}):
                    problems.append(f"{where}: its {kind} runs a command (the writer's liveness is its /healthz)")
    print(f"  kubectl kustomize {mode}: every Deployment's containers are probed alive by httpGet /healthz on their own port")

for problem in problems:
    print(f"check-objects: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print("every deploy sequence applies only objects, each after its namespace; the kustomizations list exactly their files;"
      " the backups' component is the same in both database modes and dumps pingpong's database; each restore Job runs its backup's pod;"
      " every Deployment's liveness is httpGet /healthz")
