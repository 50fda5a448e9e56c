#!/usr/bin/env bash
# Start a tools/ script with GPUS processes per node (GPUs, or CPU processes
# with gloo where there is no GPU) by torchrun; used by dist_train.sh and
# dist_test.sh, which pass `--launcher pytorch` among the script's arguments:
#   tools/dist_run.sh SCRIPT GPUS [script args...]
# Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1).
# torchrun replaces this shell (same pid, recorded in SEMA_LAUNCHER_PID): on
# Linux its processes end when it ends, even by SIGKILL
# (sema_mm/cli/parent_death.py).

SCRIPT=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

SEMA_LAUNCHER_PID=$$ PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}"
