# The two commands of the README. Both create .venv (tools/setup_env.sh) if
# needed; a rerun only checks that it is up to date.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: env demo test lint bench

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
