#!/usr/bin/env bash
# Create (or refresh) the optional, git-ignored virtual environment
# `.venv-mmselfsup` with mmselfsup 1.0.0, the older OpenMMLab self-supervised
# codebase, then install sema_mm into it.
#
#   tools/setup_mmselfsup_env.sh     # idempotent: a second run checks a stamp
#
# mmselfsup 1.0.0 needs mmcls 1.0.0rc6, and mmcls refuses mmcv >= 2.1.0, while
# `.venv` has mmcv 2.1.0 and mmpretrain 1.2.0 (which registers the same model
# names as mmcls): the two stacks cannot share an environment or a process.
# What it installs, in this order (pinned by requirements/mmselfsup.txt):
#   1. wheel and ninja (mmcv's build tools)
#   2. torch 2.13.0 + torchvision 0.28.0 from the package index, as
#      tools/setup_env.sh does
#   3. mmcv 2.0.1 compiled from its source distribution with its CPU ops.
#      PyPI has no wheel of it for this Python, and its setup.py compiles with
#      -std=c++14, which torch 2.13's headers reject: the script downloads the
#      sdist, raises the flag to -std=c++17 and builds with setuptools<70
#      (about 10 minutes with MAX_JOBS=2, about 20 with 1). The built wheel is
#      kept in $SEMA_WHEEL_CACHE (default ~/.cache/sema_mm/wheels), so a new
#      environment reuses it. setuptools is then set to >=77.0.3,<81 (torch
#      needs >= 77, mmengine 0.10.7 needs `pkg_resources`, gone in 81).
#   4. mmengine, mmcls, mmselfsup, the test tools and sema_mm (editable)
# The folder gets its own `.gitignore` (`*`), so git and ruff skip it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SEMA_MMSELFSUP_VENV:-$ROOT/.venv-mmselfsup}"
PY="$VENV/bin/python"
PIN="$ROOT/requirements/mmselfsup.txt"
STAMP="$VENV/.sema_mm_stamp"
WHEELS="${SEMA_WHEEL_CACHE:-$HOME/.cache/sema_mm/wheels}"
MMCV_VERSION=2.0.1
CHECK="import sema_mm, mmcv, mmcv.ops, mmcls, mmselfsup"

stamp_of() {
  cat "$PIN" "$ROOT/requirements/runtime.txt" "$ROOT/requirements/tests.txt" \
    "$ROOT/setup.py" "$0" | sha1sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_of)" ]] \
   && "$PY" -c "$CHECK" 2>/dev/null; then
  echo "[setup_mmselfsup_env] $VENV is up to date"
  exit 0
fi

log() { echo "[setup_mmselfsup_env] $(date +%H:%M:%S) $*"; }

if [[ ! -x "$PY" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
echo '*' > "$VENV/.gitignore"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$PIN")

log "build tools"
"${PIP[@]}" -q wheel ninja

log "torch + torchvision (package index only)"
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
  "${PIP[@]}" -q torch torchvision

log "mmengine, then mmcv $MMCV_VERSION (compiled with CPU ops unless cached)"
"${PIP[@]}" -q mmengine
if ! "$PY" -c "import mmcv, mmcv.ops; \
assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  mkdir -p "$WHEELS"
  WHEEL="$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 \
    || true)"
  if [[ -z "$WHEEL" ]]; then
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "$PY" -m pip download -q --disable-pip-version-check --no-deps \
      --no-binary :all: -d "$BUILD" "mmcv==$MMCV_VERSION"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    sed -i 's/std\([=:]\)c++14/std\1c++17/g' "$SRC/setup.py"
    if grep -q 'std[=:]c++14' "$SRC/setup.py"; then
      echo "[setup_mmselfsup_env] could not raise mmcv's C++ standard" >&2
      exit 1
    fi
    "$PY" -m pip install -q --disable-pip-version-check "setuptools<70" 2>&1 \
      | grep -v "dependency resolver\|requires setuptools\|incompatible" \
      || true
    log "compiling mmcv $MMCV_VERSION (MAX_JOBS=${MAX_JOBS:-2})"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
      "$PY" -m pip wheel -q --disable-pip-version-check --no-deps \
      --no-build-isolation -w "$BUILD/dist" "$SRC"
    cp "$BUILD"/dist/mmcv-"$MMCV_VERSION"-*.whl "$WHEELS"/
    WHEEL="$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl | head -n1)"
  fi
  "${PIP[@]}" -q "$WHEEL"
fi
"${PIP[@]}" -q "setuptools>=77.0.3,<81"

log "mmcls, mmselfsup, test tools, sema_mm"
"${PIP[@]}" -q mmcls mmselfsup -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT"

"$PY" -c "$CHECK; print('[setup_mmselfsup_env] ready: sema_mm', \
sema_mm.__version__, '| torch', __import__('torch').__version__, '| mmcv', \
mmcv.__version__, '| mmcls', mmcls.__version__, '| mmselfsup', \
mmselfsup.__version__)"
stamp_of > "$STAMP"
