#!/usr/bin/env bash
# The GPU checks in one command, for a machine with one CUDA GPU, torch and
# torchvision but no mmengine and no internet: installs the wheels carried in
# .whl/ (mmengine 0.10.7 and what it needs beyond that machine's packages),
# runs `make test-gpu` (tests/test_gpu.py), then the GPU training benchmark
# (`tools/benchmark.py --train --device cuda`), and prints a short summary
# last. Logs go to $OUT (default: work_dirs/gpu_check).
#
#   bash tools/gpu_check.sh            # from the repository root
#
# Time limits (seconds): TEST_TIMEOUT (default 330) for the tests and
# BENCH_TIMEOUT (default 200) for the benchmark. TESTS=0 or BENCH=0 skips
# that part (for a rerun of the other). Exits 0 when every part that ran
# passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-work_dirs/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir .whl/*.whl 2>&1 | tail -5
fi
"$PY" - <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import importlib, platform
import torch
print('python', platform.python_version(), '| torch', torch.__version__,
      '| GPU', torch.cuda.get_device_name() if torch.cuda.is_available()
      else 'none')
for name in ('torchvision', 'mmengine', 'numpy', 'cv2', 'pytest'):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as e:  # report, do not stop
        print(name, 'MISSING:', e)
EOF

start=$(date +%s)
test_rc=skipped
if [ "${TESTS:-1}" = 0 ]; then
    : > "$OUT/test_gpu.log"
elif command -v make >/dev/null; then
    timeout "${TEST_TIMEOUT:-330}" env PYTEST_ADDOPTS="-vv -p no:cacheprovider --durations=15" \
        make test-gpu 2>&1 | tee "$OUT/test_gpu.log"
    test_rc=${PIPESTATUS[0]}
else
    timeout "${TEST_TIMEOUT:-330}" env PYTHONPATH="$PWD" "$PY" -m pytest -v \
        -p no:cacheprovider --durations=15 tests/test_gpu.py 2>&1 \
        | tee "$OUT/test_gpu.log"
    test_rc=${PIPESTATUS[0]}
fi
test_s=$(( $(date +%s) - start ))

start=$(date +%s)
bench_rc=skipped
: > "$OUT/benchmark.log"
if [ "${BENCH:-1}" != 0 ]; then
    timeout "${BENCH_TIMEOUT:-200}" env PYTHONPATH="$PWD" "$PY" \
        tools/benchmark.py --train --device cuda 2>&1 | tee "$OUT/benchmark.log"
    bench_rc=${PIPESTATUS[0]}
fi
bench_s=$(( $(date +%s) - start ))

echo
echo "==================== gpu_check summary ===================="
cat "$OUT/versions.txt"
echo "make test-gpu: exit $test_rc in ${test_s} s:" \
    "$(grep -E '^=+ .* in [0-9.]+s.* =+$' "$OUT/test_gpu.log" | tail -1)"
grep -E '^(FAILED|ERROR) ' "$OUT/test_gpu.log" | head -20
echo "benchmark (tools/benchmark.py --train --device cuda): exit $bench_rc in ${bench_s} s"
grep -E '^(vit_b_16|round|\|)' "$OUT/benchmark.log"
# Exit 0 only when every part that ran passed.
for rc in "$test_rc" "$bench_rc"; do
    case $rc in 0|skipped) ;; *) exit 1 ;; esac
done
