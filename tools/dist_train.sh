#!/usr/bin/env bash
# Train with GPUS processes per node (GPUs, or CPU processes with gloo where
# there is no GPU), started by torchrun:
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# Environment: see tools/dist_run.sh.

exec bash "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" \
    --launcher pytorch "${@:3}"
