# The two commands of the README. Both create .venv (tools/setup_env.sh) if
# needed; a rerun only checks that it is up to date.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: env demo test lint bench test-mmselfsup

env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/demo.py

lint: env
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest tests

bench: env
	$(PY) tools/benchmark.py

# Optional: the older mmselfsup 1.0.0 stack in its own .venv-mmselfsup
# (mmcv 2.0.1 compiled with C++17; see tools/setup_mmselfsup_env.sh).
test-mmselfsup:
	bash tools/setup_mmselfsup_env.sh
	.venv-mmselfsup/bin/python -m pytest tests/test_mmselfsup.py
