# The two commands of the README. Both create .venv (tools/setup_env.sh) if
# needed; a rerun only checks that it is up to date.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: env demo test lint bench test-mmselfsup test-oldest

env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/demo.py

lint: env
	$(PY) -m ruff check .

# The CPU suite (CI's); on a GPU machine too it runs on the CPU, as in CI.
test: lint
	CUDA_VISIBLE_DEVICES= $(PY) -m pytest tests

bench: env
	$(PY) tools/benchmark.py

# Optional: the older mmselfsup 1.0.0 stack in its own .venv-mmselfsup
# (mmcv 2.0.1 compiled with C++17; see tools/setup_mmselfsup_env.sh).
test-mmselfsup:
	bash tools/setup_mmselfsup_env.sh
	.venv-mmselfsup/bin/python -m pytest tests/test_mmselfsup.py

# GPU checks only (tests/test_gpu.py, skipped without CUDA), with the Python
# on PATH: needs torch, mmengine and pytest, no .venv and no mmcv build.
.PHONY: test-gpu
test-gpu:
	python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
	PYTHONPATH=$(CURDIR) python3 -m pytest tests/test_gpu.py

# The oldest supported stack in its own .venv-oldest (Python 3.8, torch 2.0.1,
# mmengine 0.10.7, numpy<2; no mmcv, mmdet or mmpretrain): the tests that need
# only torch + mmengine. See `tools/setup_env.sh oldest`.
OLDEST_TESTS := tests/test_switch_ema_hook.py tests/test_fused_ema.py \
	tests/test_switch_schedule.py tests/test_switch_guard.py \
	tests/test_checkpoint_safety.py tests/test_bad_config.py \
	tests/test_buffers_and_teachers.py tests/test_distributed.py \
	tests/test_compat.py tests/test_sync_state.py tests/test_gpu.py \
	tests/test_host_offload.py tests/test_emahook_contract.py \
	tests/test_hook_errors.py

test-oldest:
	bash tools/setup_env.sh oldest
	PYTHONPATH=$(CURDIR) .venv-oldest/bin/python -m pytest $(OLDEST_TESTS)

# Debian's slurm-wlm and munge for tests/test_slurm.py and for trying the
# slurm scripts on one machine (docs/slurm_local.md); needs root.
.PHONY: setup-slurm
setup-slurm:
	bash tools/setup_slurm.sh
