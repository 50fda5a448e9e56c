#!/usr/bin/env bash
# Install a single-node Slurm (Debian's slurm-wlm and munge) when it is
# missing, for tests/test_slurm.py and for trying tools/slurm_*.sh and
# `tools/compare.py --launcher slurm` on one machine (docs/slurm_local.md):
#
#   tools/setup_slurm.sh        # idempotent: exits at once when installed
#
# It only installs the packages: no daemon is started and no configuration is
# written (the tests' fixture, tests/slurm_cluster.py, starts munged,
# slurmctld and slurmd with their state in a temporary folder and stops them
# by PID). The packages' own services are kept from starting during the
# install by a temporary policy-rc.d, so nothing is left running.
# Needs root (or sudo) and apt-get; elsewhere it says so and exits 0, and the
# slurm tests skip (or fail, with CI=true).
set -euo pipefail

NEEDED=(munged slurmctld slurmd sbatch srun squeue scontrol)
missing=()
for tool in "${NEEDED[@]}"; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[setup_slurm] slurm and munge are installed"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "[setup_slurm] missing: ${missing[*]}; run this script as root" \
         "(apt-get install slurm-wlm munge) to enable the slurm tests"
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "[setup_slurm] missing: ${missing[*]}; no apt-get here: install" \
       "Slurm (slurmctld, slurmd, client commands) and munge by hand"
  exit 0
fi

echo "[setup_slurm] installing slurm-wlm and munge (missing: ${missing[*]})"
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $POLICY ]]; then
  # 101: "action not allowed": the packages' services are not started.
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  own_policy=1
fi
cleanup() { if [[ $own_policy -eq 1 ]]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
  slurm-wlm munge >/dev/null
echo "[setup_slurm] installed: $(PATH="$PATH:/usr/sbin" slurmctld -V)"
