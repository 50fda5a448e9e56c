#!/usr/bin/env bash
# Test a checkpoint with GPUS processes per node (GPUs, or CPU processes with
# gloo where there is no GPU), started by torchrun:
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Environment: see tools/dist_run.sh.

exec bash "$(dirname "$0")/dist_run.sh" test.py "$3" "$1" "$2" \
    --launcher pytorch "${@:4}"
