#!/usr/bin/env bash
# Puts a backup back on k3d without ever answering a number twice
# (docs/backups.md): stops pingpong and log-output (scaled to 0) and the
# mode's backup CronJob, runs the restore Job on the backups' claim, prints
# its one line, then starts everything again.
# Usage: k3d/restore.sh [--postgres] [--from NAME] [--floor N]
#   --postgres   a database mode: a dump of the claim postgres-backups into
#                the database pingpong counts in, the StatefulSet postgres
#                (postgres/) or the CloudNativePG Cluster pingpong-db
#                (postgres-ha/); without it, the file mode: a backup of
#                backup-claim onto the shared volume
#   --from NAME  the backup to restore, by name (default: the newest):
#                20261206T021000.123Z in the file mode,
#                pingpong-20261206T021000.123Z.dump in the database modes
#   --floor N    raise the count to N rather than by the time since the
#                backup: your word that every pong answered was below N
#   -h, --help   this text
# The backups, by name, newest last:
#   file mode:   docker exec k3d-k3s-default-agent-0 ls /tmp/kube-backups
#   database:    kubectl get pv "$(kubectl -n pingpong get pvc postgres-backups -o jsonpath='{.spec.volumeName}')" \
#                  -o jsonpath='{.spec.local.path} {.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}'
#                gives the directory and the node: docker exec <node> ls <directory>
# If the restore fails, pingpong and log-output stay stopped and the CronJob
# suspended (a pingpong started on the lost count would answer its numbers
# again); the script says how to go on.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=pingpong CLUSTER=k3s-default
APPS="app.kubernetes.io/name in (pingpong,log-output)"
step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nk3d/restore.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '6,25s/^# \{0,1\}//p' "$0"; }

mode=file flag="" up=k3d/up.sh FOLDER="" from="" floor=""
while [ $# -gt 0 ]; do
  case $1 in
    --postgres) mode=postgres flag=" --postgres" up="k3d/up.sh --postgres (or --ha)" ;;
    --from | --floor)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage >&2; exit 2; fi
      if [ "$1" = --from ]; then from=$2; else floor=$2; fi
      shift ;;
    --from=*) from=${1#--from=} ;;
    --floor=*) floor=${1#--floor=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
case $floor in *[!0-9]*) die "--floor takes a whole number (every pong answered was below it), not '$floor'" ;; esac
case $from in */* | .*) die "--from takes a backup's name, as the listing in \`k3d/restore.sh --help\` shows it, not '$from'" ;; esac

# The Job's manifest and pingpong's Deployment (for its replicas) of the
# database modes are known once the cluster says which database pingpong
# counts in (below).
if [ $mode = file ]; then
  JOB=file-restore CRONJOB=file-backup CLAIM=backup-claim MANIFEST=k3d/restore-file-job.yaml
  DEPLOYMENT=manifests/pingpong-deployment.yaml
else
  JOB=postgres-restore CRONJOB=postgres-backup CLAIM=postgres-backups
fi

# ----------------------------------------------- the cluster, the right mode
command -v kubectl >/dev/null || die "kubectl is not installed"
context=$(kubectl config current-context 2>/dev/null || true)
[ "$context" = "k3d-$CLUSTER" ] ||
  die "kubectl's context is '${context:-none}', not k3d-$CLUSTER (the cluster k3d/up.sh makes); if that cluster runs: kubectl config use-context k3d-$CLUSTER"
kubectl get namespace "$NS" >/dev/null 2>&1 ||
  die "the cluster k3d-$CLUSTER does not answer, or has no namespace $NS: see kubectl get namespaces; k3d/up.sh deploys it"
kubectl -n "$NS" get deployment pingpong log-output >/dev/null ||
  die "the Deployments pingpong and log-output are not there (kubectl's error is above): deploy first, $up"
database=$(kubectl -n "$NS" get deployment pingpong -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="DATABASE_URL")].value}')
if [ $mode = file ] && [ -n "$database" ]; then
  die "pingpong counts in PostgreSQL here (DATABASE_URL $database): restore with k3d/restore.sh --postgres"
elif [ $mode = postgres ] && [ -z "$database" ]; then
  die "pingpong counts in a file here (the file mode): restore with k3d/restore.sh, without --postgres"
fi
# Which database: the host of pingpong's DATABASE_URL, not whichever is
# there (a cluster moved from one mode to the other keeps the old database
# until it is deleted: docs/postgres-ha.md). Each has its restore Job: the
# same pod, but for the address, the Secret and the image.
db=""
if [ $mode = postgres ]; then
  host=${database#*://}
  host=${host#*@}
  host=${host%%[:/?]*}
  case $host in
    postgres)
      kubectl -n "$NS" get statefulset postgres >/dev/null 2>&1 ||
        die "pingpong counts in $database, but there is no StatefulSet postgres: deploy again, k3d/up.sh --postgres"
      db="PostgreSQL (statefulset/postgres)" up="k3d/up.sh --postgres" FOLDER=postgres/
      MANIFEST=k3d/restore-postgres-job.yaml DEPLOYMENT=postgres/pingpong-deployment.yaml ;;
    pingpong-db-rw)
      kubectl -n "$NS" get clusters.postgresql.cnpg.io pingpong-db >/dev/null 2>&1 ||
        die "pingpong counts in $database, but there is no CloudNativePG Cluster pingpong-db: deploy again, k3d/up.sh --ha"
      db="the Cluster pingpong-db (CloudNativePG)" up="k3d/up.sh --ha" FOLDER=postgres-ha/
      MANIFEST=k3d/restore-postgres-ha-job.yaml DEPLOYMENT=postgres-ha/pingpong-deployment.yaml ;;
    *) die "pingpong counts in $database, which this restore does not know: it restores into the StatefulSet postgres (postgres/) or the Cluster pingpong-db (postgres-ha/)" ;;
  esac
  step "the database pingpong counts in ($database): $db"
fi
# pingpong starts again with its mode's replicas, as deployed (1 on the
# file, 3 on PostgreSQL and on CloudNativePG): the Deployment's `replicas:`,
# the file's only one.
PINGPONG_REPLICAS=$(sed -n 's/^  replicas: *\([0-9][0-9]*\) *$/\1/p' "$DEPLOYMENT" | head -n 1)
[ -n "$PINGPONG_REPLICAS" ] || die "no replicas: in $DEPLOYMENT"
kubectl -n "$NS" get cronjob "$CRONJOB" >/dev/null ||
  die "no CronJob $CRONJOB (kubectl's error is above): the objects predate the backups; deploy again, $up"

# A claim deleted with its namespace leaves its volume Released, with the
# backups in it, and a claim made again gets another volume: the file
# mode's deploy (k3d/deploy.sh) frees backup-pv for it; the database
# modes' local-path volumes are new and empty, and the kept one must be
# given back to the claim by hand.
if [ $mode = postgres ]; then
  kept=$(kubectl get pv -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.spec.claimRef.namespace}/{.spec.claimRef.name}{"\n"}{end}' |
    awk -v claim="$NS/$CLAIM" '$2 == "Released" && $3 == claim {print $1}')
  if [ -n "$kept" ]; then
    for pv in $kept; do
      printf '\nnote: the volume %s held the claim %s before it was deleted (with the namespace?), and keeps its dumps;\n' "$pv" "$CLAIM"
    done
    # shellcheck disable=SC2086 # the first kept volume; one word
    set -- $kept
    cat <<EOF
      the claim $CLAIM now has a volume of its own. To restore from the kept one, give it back to the claim:
        kubectl -n $NS delete cronjob $CRONJOB; kubectl -n $NS delete pvc $CLAIM   # the new, empty claim (its volume is kept too)
        kubectl patch pv $1 --type json -p '[{"op":"replace","path":"/spec/claimRef","value":{"namespace":"$NS","name":"$CLAIM"}}]'
        kubectl apply -k $FOLDER                                                   # the claim again: it binds $1
      then k3d/restore.sh --postgres again.
EOF
    die "the dumps from before the loss are on the kept volume $1: give it back to the claim first (above); to restore from the new claim's dumps instead, delete the kept volume first (kubectl delete pv $1)"
  fi
fi
phase=$(kubectl -n "$NS" get pvc "$CLAIM" -o jsonpath='{.status.phase}' 2>/dev/null || true)
case $mode/$phase in
  */Bound) ;;
  postgres/Pending) die "the claim $CLAIM has no volume yet: no pod has used it, so no backup was ever taken here (the CronJob $CRONJOB runs every 10 minutes)" ;;
  file/*) die "the claim $CLAIM is ${phase:-missing}, not Bound: k3d/up.sh (or k3d/deploy.sh) makes and binds it; see kubectl -n $NS describe pvc $CLAIM" ;;
  *) die "the claim $CLAIM is ${phase:-missing}, not Bound: see kubectl -n $NS describe pvc $CLAIM" ;;
esac

# ------------------------------------------------------------ stop, restore
# From here on, an exit before the end leaves the apps stopped and the
# CronJob suspended, on purpose: say so, and how to go on.
stopped=no done=no
left_stopped() {
  [ $stopped = yes ] && [ $done = no ] || return 0
  cat >&2 <<EOF

pingpong and log-output are stopped and the CronJob $CRONJOB suspended: a pingpong started on the
lost count would answer its numbers again, and a backup of it would push out the good ones.
  Try again (an older backup: --from NAME; a floor you know: --floor N): k3d/restore.sh$flag …
  Or start them as they are:
    kubectl -n $NS scale deployment/pingpong --replicas=$PINGPONG_REPLICAS; kubectl -n $NS scale deployment/log-output --replicas=1
    kubectl -n $NS patch cronjob $CRONJOB -p '{"spec":{"suspend":false}}'
EOF
}
trap left_stopped EXIT

# No backup may start meanwhile: it would take the state being replaced
# (and prune an older, good backup). One already running finishes; the
# locks order it before or after the restore.
step "suspending the CronJob $CRONJOB"
stopped=yes
kubectl -n "$NS" patch cronjob "$CRONJOB" -p '{"spec":{"suspend":true}}' >/dev/null

step "scaling pingpong and log-output to 0, and waiting for their pods to be gone"
kubectl -n "$NS" scale deployment/pingpong deployment/log-output --replicas=0 >/dev/null
# Gone, not just terminating: one still answering in its grace period
# would count on from the old state. (A loop rather than `kubectl wait
# --for=delete -l …`, which kubectl versions answer differently once no
# pod matches.)
deadline=$((SECONDS + 120))
while [ -n "$(kubectl -n "$NS" get pods -l "$APPS" -o name)" ]; do
  [ $SECONDS -lt $deadline ] || die "pods of pingpong or log-output are still there after 120 s: kubectl -n $NS get pods"
  sleep 1
done

if [ "$FOLDER" = postgres/ ]; then
  step "waiting for PostgreSQL (statefulset/postgres)"
  kubectl -n "$NS" rollout status statefulset/postgres --timeout=120s >/dev/null ||
    die "PostgreSQL is not ready: kubectl -n $NS get pods -l app.kubernetes.io/name=postgres; kubectl -n $NS logs postgres-0"
elif [ "$FOLDER" = postgres-ha/ ]; then
  # Ready: every instance up, so the restore's commit has its standby
  # (postgres-ha/cluster.yaml: a commit waits for one).
  step "waiting for the Cluster pingpong-db to be Ready"
  kubectl -n "$NS" wait clusters.postgresql.cnpg.io/pingpong-db --for=condition=Ready --timeout=120s >/dev/null ||
    die "the Cluster pingpong-db is not Ready: kubectl -n $NS get cluster pingpong-db; kubectl -n $NS get pods -l cnpg.io/cluster=pingpong-db"
fi

# Made afresh (not applied over), so that no setting of an earlier restore
# or of one made by hand is left in it.
settings="${from:+RESTORE_FROM=$from }${floor:+RESTORE_FLOOR=$floor}"
settings=${settings% }
step "the ConfigMap restore: ${settings:-(empty: the newest backup, the time rule)}"
kubectl -n "$NS" delete configmap restore --ignore-not-found >/dev/null
kubectl -n "$NS" create configmap restore \
  ${from:+"--from-literal=RESTORE_FROM=$from"} ${floor:+"--from-literal=RESTORE_FLOOR=$floor"} >/dev/null

step "kubectl apply -f $MANIFEST (the Job $JOB)"
# An earlier one (a failed restore, kept to be read) goes first, its pod too.
kubectl -n "$NS" delete job "$JOB" --ignore-not-found --cascade=foreground >/dev/null
kubectl apply -f "$MANIFEST" >/dev/null

# The Job ends Complete or Failed, within its activeDeadlineSeconds (180 s).
deadline=$((SECONDS + 240)) result=""
while [ -z "$result" ]; do
  conditions=$(kubectl -n "$NS" get job "$JOB" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' || true)
  case " $conditions " in
    *" Complete "*) result=complete ;;
    *" Failed "*) result=failed ;;
    *) [ $SECONDS -lt $deadline ] || result=timeout; sleep 2 ;;
  esac
done
log=$(kubectl -n "$NS" logs "job/$JOB" 2>&1) || log="(no log: $log)"
if [ $result != complete ]; then
  reason=$(kubectl -n "$NS" get job "$JOB" -o jsonpath='{.status.conditions[?(@.type=="Failed")].message}' 2>/dev/null || true)
  die "the restore did not complete (${reason:-$result}); nothing was started again. Its log:
$log
  The Job stays to be read: kubectl -n $NS describe job $JOB; kubectl -n $NS get pods -l job-name=$JOB"
fi
printf '%s\n' "$log"

step "cleaning up: the Job $JOB, the ConfigMap restore"
kubectl -n "$NS" delete job "$JOB" --cascade=foreground >/dev/null
kubectl -n "$NS" delete configmap restore >/dev/null

# --------------------------------------------------------------- start again
step "starting again: pingpong x$PINGPONG_REPLICAS, log-output x1, the CronJob $CRONJOB"
kubectl -n "$NS" scale deployment/pingpong --replicas="$PINGPONG_REPLICAS" >/dev/null
kubectl -n "$NS" scale deployment/log-output --replicas=1 >/dev/null
kubectl -n "$NS" patch cronjob "$CRONJOB" -p '{"spec":{"suspend":false}}' >/dev/null
done=yes
for what in deployment/pingpong deployment/log-output; do
  kubectl -n "$NS" rollout status "$what" --timeout=240s ||
    die "$what did not roll out; see: kubectl -n $NS get pods; kubectl -n $NS describe pod -l app.kubernetes.io/name=${what#*/}"
done

cat <<'MSG'

==> restored
    curl localhost:8081/pingpong        # the count goes on from the restored one
    curl 'localhost:8081/log?tail=5'    # the log, back up to the backup
MSG
