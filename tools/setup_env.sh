#!/usr/bin/env bash
# Create (or refresh) the git-ignored virtual environment `.venv` with the
# OpenMMLab stack sema_mm is tested against, then install sema_mm into it.
#
#   tools/setup_env.sh          # idempotent: a second run only checks a stamp
#
# What it installs, in this order (every step pinned by requirements/pinned.txt,
# so pip never resolves an unpinned torch):
#   1. wheel and ninja (mmcv's build tools)
#   2. torch 2.13.0 + torchvision 0.28.0 from the package index, with any local
#      wheel folder switched off: torchvision's wheels are built against the
#      index's torch, not against a local `+cpu` torch
#   3. mmcv 2.1.0 compiled from source with its CPU ops (10-16 min the first time;
#      pip caches the built wheel, so later environments reuse it). Its build
#      needs setuptools<70, torch needs >=77.0.3 and mmengine 0.10.7 needs
#      `pkg_resources` (gone in setuptools 81), so setuptools is held below 70
#      for that one build and set to >=77.0.3,<81 afterwards.
#   4. mmengine, mmdet, mmpretrain, the test tools, and sema_mm in editable mode
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SEMA_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
PIN="$ROOT/requirements/pinned.txt"
STAMP="$VENV/.sema_mm_stamp"

stamp_of() {
  cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$0" | sha1sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_of)" ]] \
   && "$PY" -c "import sema_mm, mmcv.ops, mmdet, mmpretrain" 2>/dev/null; then
  echo "[setup_env] $VENV is up to date"
  exit 0
fi

log() { echo "[setup_env] $(date +%H:%M:%S) $*"; }

if [[ ! -x "$PY" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
PIP=("$PY" -m pip install --disable-pip-version-check -c "$PIN")

log "build tools"
"${PIP[@]}" -q wheel ninja

log "torch + torchvision (package index only)"
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
  "${PIP[@]}" -q torch torchvision

log "mmengine, then mmcv (compiled with CPU ops unless already cached)"
"${PIP[@]}" -q mmengine
if ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  "$PY" -m pip install -q --disable-pip-version-check "setuptools<70" 2>&1 \
    | grep -v "dependency resolver\|requires setuptools\|incompatible" || true
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
    "${PIP[@]}" -q --no-build-isolation mmcv
fi
"${PIP[@]}" -q "setuptools>=77.0.3,<81"

log "mmdet, mmpretrain, test tools, sema_mm"
"${PIP[@]}" -q -r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/tests.txt" \
  -r "$ROOT/requirements/optional.txt"
"${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT"

"$PY" -c "import sema_mm, mmcv.ops, mmdet, mmpretrain, torchvision; \
print('[setup_env] ready: sema_mm', sema_mm.__version__, '| torch', \
__import__('torch').__version__, '| mmcv', mmcv.__version__)"
stamp_of > "$STAMP"
