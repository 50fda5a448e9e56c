#!/usr/bin/env bash
# Train on a slurm cluster as a batch job that can be preempted, requeued
# and hit its time limit: submitted with sbatch (prints the job id and
# returns), requeueable (--requeue), its training processes get SIGUSR1
# SIGNAL_S seconds before the time limit (--signal=USR1@SIGNAL_S: the step's
# processes, not the batch shell), and every start of the job, a requeued
# one too, runs tools/slurm_train.sh with --resume, i.e. resumes from the
# newest checkpoint of WORK_DIR:
#   tools/slurm_batch_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS
# ("") as in tools/slurm_run.sh; SIGNAL_S (180); SBATCH_ARGS (""), more sbatch
# options, e.g. "--time=2-00:00:00". The job's output: WORK_DIR/slurm-<id>.log.

set -eu

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PER_NODE=$((GPUS < GPUS_PER_NODE ? GPUS : GPUS_PER_NODE))
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SIGNAL_S=${SIGNAL_S:-180}
SBATCH_ARGS=${SBATCH_ARGS:-""}
TOOLS="$(cd "$(dirname "$0")" && pwd)"

mkdir -p "$WORK_DIR"
# SBATCH_ARGS is split on white space on purpose: it holds several options.
# shellcheck disable=SC2086
sbatch --parsable -p "$PARTITION" --job-name="$JOB_NAME" \
    --nodes=$(((GPUS + PER_NODE - 1) / PER_NODE)) --ntasks="$GPUS" \
    --ntasks-per-node="$PER_NODE" --gres=gpu:"$PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --requeue --signal=USR1@"$SIGNAL_S" \
    --output="$WORK_DIR/slurm-%j.log" --open-mode=append ${SBATCH_ARGS} <<EOF
#!/usr/bin/env bash
export GPUS_PER_NODE=$PER_NODE
exec bash $(printf '%q ' "$TOOLS/slurm_train.sh" "$PARTITION" "$JOB_NAME" \
    "$CONFIG" "$WORK_DIR" --resume "${@:5}")
EOF
