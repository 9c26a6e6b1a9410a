"""Writes the copies of the manifests that podman plays (the persistence
suite's podman backend), and says what was changed in each, and why.

TEST FIXTURE: the Deployments are the repository's own; what podman 4.3
cannot do, or what is not there on one machine, is changed in the copies:
- `ports:` are removed: with host networking podman refuses them;
- one pod per Deployment is all `kube play` makes: a replica is a copy with
  its own name and PORT (pingpong-b on 3001, pingpong-c on 3002);
- the PostgreSQL mode: DATABASE_URL names the test's own PostgreSQL on
  127.0.0.1 instead of the StatefulSet's Service `postgres`, PGPASSWORD is
  the test's password as a literal instead of the Secret's, and the
  writer's PINGPONG_URL is the Ingress (Traefik on this machine, which
  balances over the pingpong pods as the Service would) instead of
  pingpong-svc:2345; log-output's claim is played on its own, once (podman
  refuses to play a file with a claim whose volume exists).
- the file mode's backups: `kube play` runs no CronJob or Job, so the
  CronJob file-backup's pod and the restore Job's pod
  (k3d/restore-file-job.yaml) are written as Pods of their own, as the Job
  controller would make them, to be played once each. The restore's
  RESTORE_FROM and RESTORE_FLOOR stay references to optional keys of the
  ConfigMap `restore`, which k3d/restore.sh makes and nothing makes here:
  podman 4.3 leaves them unset, as Kubernetes does (tried: the container
  starts without them), so the newest backup and the rule by time.
Usage: python tests/persistent/podman-copies.py MODE OUT_DIR [--database-port N
       --password P --ingress URL]     (MODE: file or postgres; needs PyYAML)
"""

import argparse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["file", "postgres"])
parser.add_argument("out", type=Path)
parser.add_argument("--database-port", type=int)
parser.add_argument("--password")
parser.add_argument("--ingress", default="http://localhost:8081")
args = parser.parse_args()
folder = ROOT / ("manifests" if args.mode == "file" else "postgres")


def documents(name):
    return [d for d in yaml.safe_load_all((folder / name).read_text()) if d]


def containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def set_env(container, name, value):
    for var in container.get("env", []):
        if var["name"] == name:
            var.pop("valueFrom", None)
            var["value"] = value
            return
    raise SystemExit(f"podman-copies: no {name} in container {container['name']}")


def write(name, deployment):
    for container in containers(deployment):
        container.pop("ports", None)
    (args.out / f"{name}.yaml").write_text(yaml.safe_dump(deployment, sort_keys=False))
    print(f"  {name}.yaml: {deployment['metadata']['name']}")


args.out.mkdir(parents=True, exist_ok=True)
[pingpong] = [d for d in documents("pingpong-deployment.yaml") if d["kind"] == "Deployment"]
replicas = ["pingpong", "pingpong-b"] if args.mode == "file" else ["pingpong", "pingpong-b", "pingpong-c"]
for index, name in enumerate(replicas):
    copy = yaml.safe_load(yaml.safe_dump(pingpong))
    copy["metadata"]["name"] = name
    copy["spec"]["replicas"] = 1
    container = containers(copy)[0]
    set_env(container, "PORT", str(3000 + index))
    if args.mode == "postgres":
        set_env(container, "DATABASE_URL", f"postgres://pingpong@127.0.0.1:{args.database_port}/pingpong")
        set_env(container, "PGPASSWORD", args.password)
    write(name, copy)
log_docs = documents("log-output-deployment.yaml")
[log_output] = [d for d in log_docs if d["kind"] == "Deployment"]
if args.mode == "postgres":
    writer = next(c for c in containers(log_output) if c["name"] == "writer")
    set_env(writer, "PINGPONG_URL", args.ingress)
    [claim] = [d for d in log_docs if d["kind"] == "PersistentVolumeClaim"]
    (args.out / "log-claim.yaml").write_text(yaml.safe_dump(claim, sort_keys=False))
    print("  log-claim.yaml: PersistentVolumeClaim log-claim")
write("log-output", log_output)


def pod_of(name, template):
    """A Job's pod, as the Job controller makes it from `template`."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {**template["metadata"], "name": name},
           "spec": template["spec"]}
    (args.out / f"{name}.yaml").write_text(yaml.safe_dump(pod, sort_keys=False))
    print(f"  {name}.yaml: the pod of {template['metadata']['labels']['app.kubernetes.io/name']}")


if args.mode == "file":
    [cronjob] = [d for d in documents("backup-cronjob.yaml") if d["kind"] == "CronJob"]
    pod_of("file-backup", cronjob["spec"]["jobTemplate"]["spec"]["template"])
    [job] = [d for d in yaml.safe_load_all((ROOT / "k3d" / "restore-file-job.yaml").read_text()) if d]
    pod_of("file-restore", job["spec"]["template"])
