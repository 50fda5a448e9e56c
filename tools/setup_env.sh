#!/usr/bin/env bash
# Create (or refresh) a git-ignored virtual environment with one of the two
# stacks sema_mm is tested against, then install sema_mm into it.
#
#   tools/setup_env.sh          # `.venv`: the full OpenMMLab stack (main)
#   tools/setup_env.sh oldest   # `.venv-oldest`: the oldest supported stack
#
# Both are idempotent: a second run only checks a stamp. pip's cache is shared,
# so a rebuilt environment reuses the downloaded (and built) wheels.
#
# main: what it installs, in this order (every step pinned by
# requirements/pinned.txt, so pip never resolves an unpinned torch):
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
#
# oldest: Python 3.8 (SEMA_OLDEST_PYTHON, else `python3.8` on PATH, else the
# newest 3.8 of pyenv), pinned by requirements/oldest.txt: setuptools<81,
# torch 2.0.1 from the package index (as above; about 2.3 GB of downloads with
# its nvidia packages), mmengine 0.10.7 with numpy<2, pytest, and sema_mm in
# editable mode. No mmcv, mmdet or mmpretrain: it runs only the tests that
# need torch + mmengine (`make test-oldest`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STACK="${1:-main}"
case "$STACK" in
  main)
    VENV="${SEMA_VENV:-$ROOT/.venv}"
    PIN="$ROOT/requirements/pinned.txt"
    STAMP_INPUTS=("$ROOT"/requirements/*.txt)
    CHECK="import sema_mm, mmcv.ops, mmdet, mmpretrain"
    ;;
  oldest)
    VENV="${SEMA_OLDEST_VENV:-$ROOT/.venv-oldest}"
    PIN="$ROOT/requirements/oldest.txt"
    STAMP_INPUTS=("$PIN" "$ROOT/requirements/runtime.txt")
    # The stack only: importing sema_mm is the tests' job.
    CHECK="import importlib.metadata as m, mmengine, pytest, torch; \
m.version('sema_mm')"
    ;;
  *)
    echo "usage: $0 [oldest]" >&2
    exit 2
    ;;
esac
PY="$VENV/bin/python"
STAMP="$VENV/.sema_mm_stamp"

stamp_of() {
  cat "${STAMP_INPUTS[@]}" "$ROOT/setup.py" "$0" | sha1sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_of)" ]] \
   && "$PY" -c "$CHECK" 2>/dev/null; then
  echo "[setup_env] $VENV is up to date"
  exit 0
fi

log() { echo "[setup_env] $(date +%H:%M:%S) $*"; }

# The oldest stack's interpreter: SEMA_OLDEST_PYTHON if set, else the first
# Python 3.8 that runs of `python3.8` and pyenv's 3.8 versions (newest first).
python38() {
  local p found=()
  if [[ -n "${SEMA_OLDEST_PYTHON:-}" ]]; then
    found=("$SEMA_OLDEST_PYTHON")
  else
    found=(python3.8)
    if command -v pyenv >/dev/null; then
      mapfile -t -O 1 found < <(ls -d \
        "$(pyenv root)"/versions/3.8.*/bin/python3.8 2>/dev/null | sort -rV)
    fi
  fi
  for p in "${found[@]}"; do
    if "$p" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null
    then
      echo "$p"
      return
    fi
  done
  echo "[setup_env] no Python 3.8 found; set SEMA_OLDEST_PYTHON" >&2
  return 1
}

if [[ ! -x "$PY" ]]; then
  if [[ "$STACK" == main ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
  else
    BASE="$(python38)"
    log "creating $VENV with $BASE"
    "$BASE" -m venv "$VENV"
  fi
fi
PIP=("$PY" -m pip install --disable-pip-version-check -c "$PIN")
# torch from the package index, with any local wheel folder switched off.
INDEX_ONLY=(env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL
  PIP_CONFIG_FILE=/dev/null)

if [[ "$STACK" == oldest ]]; then
  log "setuptools, then torch (package index only)"
  "${PIP[@]}" -q setuptools
  "${INDEX_ONLY[@]}" "${PIP[@]}" -q torch

  log "mmengine, pytest, sema_mm"
  "${PIP[@]}" -q mmengine pytest
  "${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT"

  "$PY" -c "$CHECK; import sys, numpy; print('[setup_env] ready: Python', \
sys.version.split()[0], '| torch', torch.__version__, '| mmengine', \
mmengine.__version__, '| numpy', numpy.__version__)"
  stamp_of > "$STAMP"
  exit 0
fi

log "build tools"
"${PIP[@]}" -q wheel ninja

log "torch + torchvision (package index only)"
"${INDEX_ONLY[@]}" "${PIP[@]}" -q torch torchvision

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
